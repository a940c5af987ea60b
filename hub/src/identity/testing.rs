//! A hub on a fresh data directory for the services' unit tests, with its
//! admin and helpers that make nodes and users directly.

use std::sync::Arc;

use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::Role;

use super::{Actor, User, put_user, users::user_by_name};
use crate::app::{Hub, SystemClock};
use crate::config::Config;
use crate::tenancy::{Node, NodeLocale, put_node};

/// A hub, its root node and its admin, and the directory it lives in.
pub struct Fixture {
    /// Kept so the directory lives as long as the hub.
    pub _dir: tempfile::TempDir,
    /// The hub.
    pub hub: Hub,
    /// The root node.
    pub root: NodeId,
    /// The admin `init` made, acting from the root.
    pub admin: Actor,
}

/// A fresh hub.
pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = crate::init::init(&data, chrono::Utc::now()).await.unwrap();
    let config = Config {
        data,
        ..Config::default()
    };
    let hub = crate::serve::open(config, Arc::new(SystemClock)).unwrap();
    let admin = user_by_name(&hub.store, "admin").unwrap().unwrap();
    Fixture {
        _dir: dir,
        hub,
        root: made.root_node,
        admin: actor(admin),
    }
}

/// `user` acting from a test address.
pub fn actor(user: User) -> Actor {
    Actor {
        user,
        from: "192.0.2.1".into(),
    }
}

impl Fixture {
    /// A node `id` under `parent`, stored directly.
    pub async fn node(&self, id: &str, parent: &NodeId) -> NodeId {
        let node = Node {
            id: NodeId::from(id),
            parent: Some(parent.clone()),
            name: id.into(),
            restricted: false,
            created_by: None,
            created_at: self.hub.now(),
            content_manager_email: None,
            strict_feeds: false,
            created_at_root_level: true,
            locale: NodeLocale::default(),
        };
        self.hub
            .store
            .transact(|tx| put_node(tx, &node))
            .await
            .unwrap();
        node.id
    }

    /// A user `name` with `role` over `domain`, stored directly.
    pub async fn user(&self, name: &str, role: Role, domain: &[&NodeId]) -> Actor {
        let user = User {
            id: UserId::new(format!("u-{name}")),
            name: name.into(),
            email: format!("{name}@example.com"),
            role,
            domain: domain.iter().map(|n| (*n).clone()).collect(),
            requires_approval: false,
            disabled: false,
            password_hash: String::new(),
            created_at: self.hub.now(),
            created_by: None,
        };
        self.hub
            .store
            .transact(|tx| put_user(tx, &user))
            .await
            .unwrap();
        actor(user)
    }
}
