//! Which display `video_sink = "auto"` draws on (D7).
//!
//! Owns: the fixed order of displays tried — KMS (a DRM device), Wayland,
//! X — and the check that one is usable: its precondition first (a
//! `/dev/dri/card*` device that opens, `WAYLAND_DISPLAY` naming a socket
//! that accepts, `DISPLAY` naming an X server that accepts), then its sink
//! element set to READY (where it opens the device or connects) on a helper
//! thread, given at most [`PROBE_TIMEOUT`]. Must not: ever make
//! `autovideosink`, which falls through to sinks that crash the process
//! without a display (DirectFB), nor decide what happens without a display
//! (the player plays headless and says why).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::VideoSink;

/// The longest a sink may take to open its display while probed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a TCP connection to a remote X server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Where DRM devices are.
const DRI_DIR: &str = "/dev/dri";
/// Where local X servers listen.
const X11_SOCKETS: &str = "/tmp/.X11-unix";
/// The TCP port of X display 0.
const X11_TCP_BASE: u16 = 6000;

/// The displays `auto` tries, in order.
pub const ORDER: [VideoSink; 3] = [VideoSink::Kms, VideoSink::Wayland, VideoSink::X];

/// The name of a concrete sink choice, as the config spells it.
#[must_use]
pub fn name(sink: VideoSink) -> &'static str {
    match sink {
        VideoSink::Kms => "kms",
        VideoSink::Wayland => "wayland",
        VideoSink::X => "x",
        VideoSink::Auto => "auto",
        VideoSink::None => "none",
    }
}

/// The GStreamer element drawing on `sink`'s display (`None` for `auto`
/// and `none`: neither has one).
#[must_use]
pub fn factory(sink: VideoSink) -> Option<&'static str> {
    match sink {
        VideoSink::Kms => Some("kmssink"),
        VideoSink::Wayland => Some("waylandsink"),
        VideoSink::X => Some("ximagesink"),
        VideoSink::Auto | VideoSink::None => None,
    }
}

/// Whether `sink`'s display is usable here, with `env` as the process
/// environment; `Err` says why not. GStreamer must be initialised.
///
/// # Errors
/// Why the display cannot be used.
pub fn usable(sink: VideoSink, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match sink {
        VideoSink::Kms => drm_device(Path::new(DRI_DIR)).map(|_| ())?,
        VideoSink::Wayland => wayland_socket(env).map(|_| ())?,
        VideoSink::X => x_server(env)?,
        VideoSink::Auto | VideoSink::None => {
            return Err("not a display".to_owned());
        }
    }
    let Some(factory) = factory(sink) else {
        return Err("not a display".to_owned());
    };
    probe_ready(factory, PROBE_TIMEOUT)
}

/// The first DRM card in `dir` that opens for reading and writing.
fn drm_device(dir: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("no DRM device ({dir:?}: {e})"))?;
    let mut cards: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("card"))
        .map(|e| e.path())
        .collect();
    cards.sort();
    let mut last = format!("no DRM device in {}", dir.display());
    for card in cards {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&card)
        {
            Ok(_) => return Ok(card),
            Err(e) => last = format!("{}: {e}", card.display()),
        }
    }
    Err(last)
}

/// The Wayland compositor's socket, if `WAYLAND_DISPLAY` names one that
/// accepts a connection.
fn wayland_socket(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let display = env("WAYLAND_DISPLAY")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| "WAYLAND_DISPLAY is not set".to_owned())?;
    let path = if Path::new(&display).is_absolute() {
        PathBuf::from(&display)
    } else {
        let runtime = env("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| "XDG_RUNTIME_DIR is not set".to_owned())?;
        Path::new(&runtime).join(&display)
    };
    std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| format!("no compositor at {}: {e}", path.display()))?;
    Ok(path)
}

/// Whether `DISPLAY` names an X server that accepts a connection: a local
/// one through its socket, a remote one over TCP.
fn x_server(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let display = env("DISPLAY")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| "DISPLAY is not set".to_owned())?;
    let (host, rest) = display
        .rsplit_once(':')
        .ok_or_else(|| format!("DISPLAY {display:?} is not host:number"))?;
    let number: u16 = rest
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("DISPLAY {display:?} has no display number"))?;
    if host.is_empty() || host == "unix" {
        let socket = Path::new(X11_SOCKETS).join(format!("X{number}"));
        std::os::unix::net::UnixStream::connect(&socket)
            .map_err(|e| format!("no X server at {}: {e}", socket.display()))?;
        return Ok(());
    }
    let port = X11_TCP_BASE
        .checked_add(number)
        .ok_or_else(|| format!("DISPLAY {display:?}: display number too large"))?;
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("DISPLAY {display:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("DISPLAY {display:?}: host has no address"))?;
    std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map_err(|e| format!("no X server at {address}: {e}"))?;
    Ok(())
}

/// Sets a new `factory` element to READY (where display sinks open their
/// device or connect) and back, on a helper thread, waiting at most
/// `timeout`; a sink that hangs is abandoned and counts as unusable.
fn probe_ready(factory: &str, timeout: Duration) -> Result<(), String> {
    let element = gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("{factory} is not installed: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signet-sink-probe".to_owned())
        .spawn(move || {
            let result = element
                .set_state(gst::State::Ready)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = element.set_state(gst::State::Null);
            let _ = tx.send(result);
        })
        .map_err(|e| format!("cannot probe {factory}: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{factory} does not open: {e}")),
        Err(_) => Err(format!(
            "{factory} did not open within {} s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// D7: without the variables, Wayland and X are unusable with the
    /// reason; nothing is probed.
    #[test]
    fn d7_missing_variables_make_wayland_and_x_unusable() {
        gst::init().unwrap();
        let none = env_of(&[]);
        assert_eq!(
            usable(VideoSink::Wayland, &none).unwrap_err(),
            "WAYLAND_DISPLAY is not set"
        );
        assert_eq!(
            usable(VideoSink::X, &none).unwrap_err(),
            "DISPLAY is not set"
        );
        assert!(usable(VideoSink::Auto, &none).is_err());
        assert!(usable(VideoSink::None, &none).is_err());
    }

    /// D7: a variable naming nothing that listens is unusable, saying where
    /// it looked; a malformed DISPLAY is refused.
    #[test]
    fn d7_displays_that_do_not_answer_are_unusable() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().display().to_string();
        let env = env_of(&[
            ("WAYLAND_DISPLAY", "wayland-9"),
            ("XDG_RUNTIME_DIR", &runtime),
            ("DISPLAY", ":6553"),
        ]);
        let wayland = usable(VideoSink::Wayland, &env).unwrap_err();
        assert!(wayland.contains("wayland-9"), "{wayland}");
        let x = usable(VideoSink::X, &env).unwrap_err();
        assert!(x.contains("X6553"), "{x}");
        let bad = env_of(&[("DISPLAY", "nonsense")]);
        assert!(
            usable(VideoSink::X, &bad)
                .unwrap_err()
                .contains("host:number")
        );
    }

    /// D7: a directory without DRM cards is no KMS display.
    #[test]
    fn d7_no_drm_card_is_no_kms_display() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("renderD128"), b"").unwrap();
        let error = drm_device(dir.path()).unwrap_err();
        assert!(error.contains("no DRM device"), "{error}");
        assert!(drm_device(&dir.path().join("missing")).is_err());
    }
}
