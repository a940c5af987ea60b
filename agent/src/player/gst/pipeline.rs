//! The output pipeline's own threads: the probe on the compositor's output
//! (a composed frame retires the item below and feeds a waiting
//! screenshot) and the bus thread (errors become [`PlaybackError`]s, the
//! failed item's bin is removed).
//!
//! Owns: what happens on GStreamer's threads. Must not: block them longer
//! than a lock.

use super::*;

/// Watches the compositor's output: once a frame was composed after the
/// incoming item's first buffer arrived and covers its time, it posts
/// [`COMPOSED`] so the bus thread retires the item below. It also hands
/// the next frame to a waiting [`Player::screenshot`].
pub(super) fn watch_composed(
    compositor: &gst::Element,
    awaiting: Arc<Mutex<Option<Awaiting>>>,
    shot: Arc<ShotSlot>,
) -> Result<(), PlayerError> {
    let src = compositor
        .static_pad("src")
        .ok_or_else(|| PlayerError::Link("the compositor has no src pad".to_owned()))?;
    let weak = compositor.downgrade();
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        if shot.wanted.swap(false, Ordering::SeqCst) {
            let sample = gst::Sample::builder()
                .buffer(buffer)
                .caps_if_some(pad.current_caps().as_ref())
                .build();
            *lock(&shot.frame) = Some(sample);
            shot.taken.notify_all();
        }
        let end = running_time(pad, buffer)
            .map(|rt| rt + buffer.duration().unwrap_or(gst::ClockTime::ZERO));
        let Some(end) = end else {
            return gst::PadProbeReturn::Ok;
        };
        let mut awaiting = lock(&awaiting);
        let done = match awaiting.as_mut() {
            Some(wait) if wait.arrival.arrived.load(Ordering::SeqCst) => {
                if wait.seen {
                    let first = wait.arrival.first_rt.load(Ordering::SeqCst);
                    (i64::try_from(end.nseconds()).unwrap_or(i64::MAX) > first).then_some(wait.seq)
                } else {
                    wait.seen = true;
                    None
                }
            }
            _ => None,
        };
        if let Some(seq) = done {
            *awaiting = None;
            drop(awaiting);
            if let Some(compositor) = weak.upgrade() {
                let s = gst::Structure::builder(COMPOSED).field("seq", seq).build();
                let _ = compositor.post_message(
                    gst::message::Application::builder(s)
                        .src(&compositor)
                        .build(),
                );
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Takes the pad and bin of `entry` off the pipeline.
pub(super) fn retire(shared: &Shared, entry: Entry) {
    if let Some(pad) = &entry.comp_pad {
        // Releasing flushes the pad, which frees a streaming thread waiting
        // in it; then the bin can stop.
        if let Some(peer) = pad.peer() {
            let _ = peer.unlink(pad);
        }
        shared.compositor.release_request_pad(pad);
    }
    {
        let mut state = lock(&entry.gate.state);
        if *state == GateState::Waiting {
            *state = GateState::Failed;
            entry.gate.changed.notify_all();
        }
    }
    let _ = entry.bin.set_state(gst::State::Null);
    let _ = shared.pipeline.remove(&entry.bin);
}

/// Handles the output pipeline's bus until [`STOP`]: item errors and
/// composed incoming items.
pub(super) fn bus_loop(bus: &gst::Bus, shared: &Shared) {
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Error(error) => {
                let text = bounded(match error.debug() {
                    Some(debug) => format!("{} ({debug})", error.error()),
                    None => error.error().to_string(),
                });
                match message.src().and_then(item_of) {
                    Some(seq) => failed(shared, seq, &text),
                    None => {
                        tracing::error!(message = %text, "the output pipeline reported an error")
                    }
                }
            }
            gst::MessageView::Warning(warning) => {
                tracing::warn!(message = %warning.error(), "GStreamer warning");
            }
            gst::MessageView::Latency(_) => {
                let _ = shared.pipeline.recalculate_latency();
            }
            gst::MessageView::Application(app) => match app.structure() {
                Some(s) if s.name() == STOP => return,
                Some(s) if s.name() == COMPOSED => {
                    if let Ok(seq) = s.get::<u64>("seq") {
                        composed(shared, seq);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The incoming item `seq` is in a composed frame: the one below goes.
pub(super) fn composed(shared: &Shared, seq: u64) {
    let mut stage = lock(&shared.stage);
    if stage.incoming.as_ref().is_none_or(|e| e.seq != seq) {
        return;
    }
    let incoming = stage.incoming.take();
    let old = std::mem::replace(&mut stage.on_screen, incoming);
    drop(stage);
    if let Some(old) = old {
        retire(shared, old);
    }
}

/// Item `seq` failed with `message`: reported, removed; what was below it
/// stays on screen.
pub(super) fn failed(shared: &Shared, seq: u64, message: &str) {
    let mut stage = lock(&shared.stage);
    let entry = if stage.incoming.as_ref().is_some_and(|e| e.seq == seq) {
        stage.incoming.take()
    } else if stage.on_screen.as_ref().is_some_and(|e| e.seq == seq) {
        stage.on_screen.take()
    } else if stage.prerolled.as_ref().is_some_and(|e| e.seq == seq) {
        stage.prerolled.take()
    } else {
        // Already removed (a second error from the same bin).
        return;
    };
    let Some(entry) = entry else { return };
    tracing::warn!(item = %entry.what.item().id, %message, "the player could not play it");
    report(&mut stage, entry.what.item().id.clone(), message.to_owned());
    drop(stage);
    {
        let mut awaiting = lock(&shared.awaiting);
        if awaiting.as_ref().is_some_and(|a| a.seq == seq) {
            *awaiting = None;
        }
    }
    retire(shared, entry);
}

/// Queues an error for `take_errors` and wakes the scheduler.
pub(super) fn report(stage: &mut Stage, item: ItemId, message: String) {
    if stage.errors.len() < MAX_ERRORS {
        stage.errors.push(PlaybackError { item, message });
    }
    if let Some(wake) = &stage.wake {
        wake.notify_one();
    }
}
