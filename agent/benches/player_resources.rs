//! Benchmark (issue 7, not a test): the agent's GStreamer player against
//! `gst-launch-1.0 playbin` playing the same 1080p file headless, in the
//! same run. Prints each one's peak RSS and CPU time and the two ratios
//! (goal: RSS ≤ 1.2×, CPU ≤ 1.1×).
//!
//! `cargo bench -p signet-agent --bench player_resources`. Two files, made
//! by GStreamer's own VP8 encoder:
//! - a ball on black, which costs the decoder almost nothing, so what the
//!   player adds per frame (the compositor's copy of each 1080p frame, which
//!   makes seamless switching possible) is as large a share as it can be;
//! - a scrolling SMPTE pattern at 6 Mbit/s, where every macroblock changes,
//!   as in real footage.
//!
//! Both processes play each file in real time to a synchronised fakesink.
//! Each is measured from outside by polling its `/proc/{pid}` (VmHWM: peak
//! resident set; utime + stime: CPU), the same way for both.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use signet_agent::config::VideoSink;
use signet_agent::player::gst::GstPlayer;
use signet_agent::player::{Player, Showable, Source};
use signet_common::approval::ApprovalState;
use signet_common::digest::Sha256;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::ids::ItemId;

/// The child mode: play the file named by this variable with the agent's
/// player, then exit.
const CHILD: &str = "SIGNET_BENCH_PLAY";
const SECONDS: u64 = 10;
const FPS: u64 = 25;

fn main() {
    if let Ok(file) = std::env::var(CHILD) {
        play_with_agent(Path::new(&file));
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = tempfile::tempdir().unwrap();
    let clips: [(&str, &[&str]); 2] = [
        ("ball on black", &["pattern=ball"]),
        (
            "scrolling SMPTE, 6 Mbit/s",
            &["pattern=smpte", "horizontal-speed=8"],
        ),
    ];
    for (index, (name, pattern)) in clips.into_iter().enumerate() {
        let video = dir.path().join(format!("1080p-{index}.webm"));
        let made = Instant::now();
        encode(&video, pattern);
        println!(
            "{name}: a {SECONDS} s 1080p VP8 file ({} bytes), made in {:.1} s",
            std::fs::metadata(&video).unwrap().len(),
            made.elapsed().as_secs_f64()
        );
        compare(&video);
    }
}

/// Plays `video` with the agent's player and with playbin, and prints both
/// measurements and their ratios.
fn compare(video: &Path) {
    let agent = measure(Command::new(std::env::current_exe().unwrap()).env(CHILD, video));
    let baseline = measure(Command::new("gst-launch-1.0").args([
        "-q",
        "playbin",
        &format!("uri=file://{}", video.display()),
        "video-sink=fakesink sync=true",
        "audio-sink=fakesink sync=true",
    ]));
    println!(
        "agent player:    peak RSS {:>7} KiB, CPU {:>6.2} s, wall {:>5.2} s",
        agent.peak_rss_kib, agent.cpu_secs, agent.wall_secs
    );
    println!(
        "gst-launch-1.0:  peak RSS {:>7} KiB, CPU {:>6.2} s, wall {:>5.2} s",
        baseline.peak_rss_kib, baseline.cpu_secs, baseline.wall_secs
    );
    println!(
        "ratios (agent / playbin): RSS {:.2}x (goal <= 1.2), CPU {:.2}x (goal <= 1.1)",
        agent.peak_rss_kib as f64 / baseline.peak_rss_kib.max(1) as f64,
        agent.cpu_secs / baseline.cpu_secs.max(0.001)
    );
}

/// Encodes a moving 1080p test pattern made with `pattern` (videotestsrc
/// properties).
fn encode(path: &Path, pattern: &[&str]) {
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc"])
        .args(pattern)
        .args([
            &format!("num-buffers={}", SECONDS * FPS),
            "!",
            &format!("video/x-raw,width=1920,height=1080,framerate={FPS}/1"),
            "!",
            "vp8enc",
            "deadline=1",
            "cpu-used=16",
            "target-bitrate=6000000",
            "!",
            "webmmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "encoding failed");
}

/// The child: the agent's player shows the video full screen (headless)
/// for its length.
fn play_with_agent(file: &Path) {
    let bytes_hash = Sha256::of(file.display().to_string().as_bytes());
    let item = ManifestItem {
        id: ItemId::from("bench-1080p"),
        kind: ItemKind::Video,
        sha256: bytes_hash,
        size: std::fs::metadata(file).unwrap().len(),
        url: "http://127.0.0.1/unused".into(),
        approval: ApprovalState::Active,
        approved_hash: Some(bytes_hash),
        categories: vec![],
        renditions: Vec::new(),
    };
    let mut player = GstPlayer::new(VideoSink::None, 1920, 1080).unwrap();
    player
        .show(&Showable::Media {
            item,
            source: Source::open(ItemKind::Video, file.to_owned()).unwrap(),
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(SECONDS));
    let errors = player.take_errors();
    assert!(errors.is_empty(), "{errors:?}");
}

/// What one process used.
struct Usage {
    /// Peak resident set (VmHWM), KiB.
    peak_rss_kib: u64,
    /// User + system CPU, seconds.
    cpu_secs: f64,
    /// Wall time, seconds.
    wall_secs: f64,
}

/// Runs `command` to its end, polling its `/proc` entry.
fn measure(command: &mut Command) -> Usage {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
    let mut usage = Usage {
        peak_rss_kib: 0,
        cpu_secs: 0.0,
        wall_secs: 0.0,
    };
    let deadline = started + Duration::from_secs(SECONDS * 6);
    loop {
        if let Ok(status) = std::fs::read_to_string(proc_dir.join("status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            usage.peak_rss_kib = usage.peak_rss_kib.max(kib);
        }
        if let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat"))
            && let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest)
        {
            // Fields after the name: state is 3rd overall; utime 14th, stime 15th.
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
            usage.cpu_secs = usage.cpu_secs.max(cpu);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the player did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    usage.wall_secs = started.elapsed().as_secs_f64();
    usage
}
