//! Which hub replica this is and whether it leads now (X5, DESIGN §10).
//!
//! Owns: [`Replica`] — the replica's id and its leadership flag, one per
//! hub in [`super::Hub`]. The election (`crate::cluster`) sets the flag;
//! `/healthz`, `/metrics`, the MQTT link and the once-only loops read it.
//! Must not: elect anything (the cluster module does, on PostgreSQL) or
//! know what leader work is. With sled there is one hub, always leader.

use tokio::sync::watch;

/// This replica: its id and whether it holds the leadership now.
#[derive(Debug)]
pub struct Replica {
    /// The id `/healthz` and `/metrics` show (`replica_id`, else host and pid).
    id: String,
    /// Whether this replica leads now.
    leading: watch::Sender<bool>,
}

impl Replica {
    /// Replica `id`, leading from the start when `leading`.
    #[must_use]
    pub fn new(id: String, leading: bool) -> Self {
        Self {
            id,
            leading: watch::Sender::new(leading),
        }
    }

    /// The replica's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this replica leads now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows the leadership: the receiver sees every change.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Records that this replica now leads (`true`) or no longer does.
    pub fn set_leader(&self, leading: bool) {
        self.leading.send_if_modified(|now| {
            let changed = *now != leading;
            *now = leading;
            changed
        });
    }
}

/// The default replica id: the host's name and this process's id.
#[must_use]
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hub".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::Replica;

    #[test]
    fn x5_leadership_changes_are_seen_by_watchers() {
        let replica = Replica::new("a".into(), false);
        let mut watch = replica.watch();
        assert!(!replica.is_leader());
        replica.set_leader(true);
        assert!(replica.is_leader());
        assert!(watch.has_changed().unwrap_or(false));
        assert!(*watch.borrow_and_update());
        replica.set_leader(true);
        assert!(
            !watch.has_changed().unwrap_or(true),
            "no change, no wake-up"
        );
    }
}
