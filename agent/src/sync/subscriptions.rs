//! Subscriptions the broker refused (S10, X1): which topics a SUBACK
//! refused, when to ask again and what the state says about it.
//!
//! The hub grants a device its topics on the broker through a durable
//! outbox, so a grant may land after the device subscribed (a new group in
//! its assignment, a pairing whose grant is still on its way). The broker
//! then answers the SUBSCRIBE with a failure (0x80) for that topic and
//! keeps no subscription: without asking again the device would miss every
//! later publication there until it reconnects with a fresh session. So
//! each refused topic the device still wants is subscribed again with the
//! agent's back-off ([`crate::retry::Backoff`]) until the broker accepts it,
//! and at once after every reconnect (mosquitto disconnects a client whose
//! rights change).
//!
//! Owns: the order of subscription requests (shared with the event loop,
//! which matches each SUBSCRIBE it sends to its packet id and each SUBACK
//! to its topics), the refused set, the retry schedule and the log lines
//! when a topic changes between refused and accepted. Must not: send
//! anything itself (the verifier queues the requests).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::retry::Backoff;

/// The topics of each subscription request the verifier queued and the
/// event loop has not sent yet, oldest first (rumqttc sends requests in
/// the order they were queued).
pub type Requested = Arc<Mutex<VecDeque<Vec<String>>>>;

/// The prefix of the state's `last_error` while topics are refused.
const REFUSED_PREFIX: &str = "the broker refused the subscription to";

/// The refused topics and when to ask for them again.
#[derive(Debug)]
pub struct Subscriptions {
    /// Shared with the event loop.
    requested: Requested,
    /// Topics the broker refused at their last SUBACK (or whose SUBACK was
    /// lost with the connection), still wanted.
    refused: BTreeSet<String>,
    /// Consecutive retries that were refused again.
    failures: u32,
    /// When to subscribe to the refused topics again.
    retry_at: Option<Instant>,
    /// The retry policy (the reconnect back-off).
    backoff: Backoff,
}

impl Subscriptions {
    /// Nothing refused yet.
    #[must_use]
    pub fn new(requested: Requested, backoff: Backoff) -> Self {
        Self {
            requested,
            refused: BTreeSet::new(),
            failures: 0,
            retry_at: None,
            backoff,
        }
    }

    /// Records a subscription request about to be queued.
    pub fn queued(&self, topics: Vec<String>) {
        if let Ok(mut requested) = self.requested.lock() {
            requested.push_back(topics);
        }
    }

    /// Forgets the request just recorded: it could not be queued.
    pub fn not_queued(&self) {
        if let Ok(mut requested) = self.requested.lock() {
            requested.pop_back();
        }
    }

    /// The broker answered: `granted` and `refused` topics; `wanted` is
    /// what the device follows now. Logs each topic whose standing changed
    /// and schedules the next retry. Returns whether the refused set
    /// changed (the state then says so).
    pub fn answered(
        &mut self,
        granted: &[String],
        refused: &[String],
        wanted: &BTreeSet<String>,
        now: Instant,
    ) -> bool {
        let before = self.refused.clone();
        for topic in granted {
            if self.refused.remove(topic) {
                tracing::info!(%topic, "the broker now accepts the subscription");
            }
        }
        let mut refused_again = false;
        for topic in refused.iter().filter(|t| wanted.contains(*t)) {
            if self.refused.insert(topic.clone()) {
                tracing::warn!(
                    %topic,
                    "the broker refused the subscription (no grant yet); subscribing again with back-off"
                );
            } else {
                refused_again = true;
                tracing::debug!(%topic, "the broker refused the subscription again");
            }
        }
        self.forget_unwanted(wanted);
        if self.refused.is_empty() {
            self.failures = 0;
            self.retry_at = None;
        } else if self.retry_at.is_none() {
            if refused_again {
                self.failures = self.failures.saturating_add(1);
            }
            let failures = self.failures.saturating_add(1);
            self.retry_at = Some(now + self.backoff.delay(failures));
        }
        before != self.refused
    }

    /// Topics sent but never answered (the connection ended first): asked
    /// for again like refused ones, without a log line of their own.
    pub fn unconfirmed(&mut self, topics: Vec<String>, wanted: &BTreeSet<String>) {
        self.refused
            .extend(topics.into_iter().filter(|t| wanted.contains(t)));
    }

    /// Drops refused topics the device no longer follows.
    pub fn forget_unwanted(&mut self, wanted: &BTreeSet<String>) {
        self.refused.retain(|t| wanted.contains(t));
        if self.refused.is_empty() {
            self.retry_at = None;
            self.failures = 0;
        }
    }

    /// When the next retry is due, if any topic is refused.
    #[must_use]
    pub fn due(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The refused topics to subscribe to again now (the retry is taken:
    /// the next one is scheduled when the broker answers).
    pub fn take_retry(&mut self) -> Vec<String> {
        self.retry_at = None;
        self.refused.iter().cloned().collect()
    }

    /// Whether any topic is refused.
    #[must_use]
    pub fn any_refused(&self) -> bool {
        !self.refused.is_empty()
    }

    /// What the state's `last_error` says while topics are refused.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let topics: Vec<&str> = self.refused.iter().map(String::as_str).collect();
        Some(signet_common::sync::clip_text(&format!(
            "{REFUSED_PREFIX} {} (not granted yet); retrying",
            topics.join(", ")
        )))
    }

    /// Whether `last_error` is this module's (so it is cleared once every
    /// topic is accepted).
    #[must_use]
    pub fn is_problem(text: &str) -> bool {
        text.starts_with(REFUSED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn set(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| (*t).to_owned()).collect()
    }

    fn topics(topics: &[&str]) -> Vec<String> {
        topics.iter().map(|t| (*t).to_owned()).collect()
    }

    /// S10, X1: a refused topic the device wants is retried after a delay
    /// within the back-off ceiling, growing while it stays refused; an
    /// accepted or unwanted one is forgotten, and the problem text goes.
    #[test]
    fn s10_x1_refused_topics_retry_with_back_off_until_accepted() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut subs = Subscriptions::new(Requested::default(), backoff);
        let wanted = set(&["a", "b"]);
        let now = Instant::now();
        assert!(subs.answered(&topics(&["a"]), &topics(&["b", "x"]), &wanted, now));
        let due = subs.due().unwrap();
        assert!(due <= now + backoff.ceiling(1));
        assert!(subs.problem().unwrap().contains('b'));
        assert!(
            !subs.problem().unwrap().contains('x'),
            "unwanted topics are not retried"
        );
        assert_eq!(subs.take_retry(), topics(&["b"]));
        assert!(subs.due().is_none());
        // Refused again: the next delay may be longer.
        assert!(!subs.answered(&[], &topics(&["b"]), &wanted, now));
        assert!(subs.due().unwrap() <= now + backoff.ceiling(2));
        subs.take_retry();
        assert!(subs.answered(&topics(&["b"]), &[], &wanted, now));
        assert!(subs.due().is_none() && subs.problem().is_none());
        // Refused, then no longer wanted: nothing left to retry.
        subs.answered(&[], &topics(&["a"]), &wanted, now);
        subs.forget_unwanted(&set(&["b"]));
        assert!(!subs.any_refused() && subs.due().is_none());
    }

    /// S10: requests are matched in the order they were queued; one that
    /// could not be queued is forgotten.
    #[test]
    fn s10_requests_keep_their_order() {
        let requested = Requested::default();
        let subs = Subscriptions::new(
            requested.clone(),
            Backoff {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(10),
            },
        );
        subs.queued(topics(&["a"]));
        subs.queued(topics(&["b"]));
        subs.not_queued();
        subs.queued(topics(&["c"]));
        let order: Vec<Vec<String>> = requested.lock().unwrap().iter().cloned().collect();
        assert_eq!(order, vec![topics(&["a"]), topics(&["c"])]);
    }
}
