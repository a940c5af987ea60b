//! `signet-hub init --data DIR` (DESIGN §6): a new data directory with its
//! keys, the root node and the first admin.

use std::path::Path;

use chrono::{DateTime, Utc};
use signet_common::envelope::KeyId;
use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::Role;

use crate::identity::{User, hash_password, new_id, new_password};
use crate::keys;
use crate::store::{SledStorage, Store, WriteBatch};
use crate::tenancy::{NODES, Node};

/// The first admin's login name.
pub const ADMIN_NAME: &str = "admin";

/// What `init` made, for printing.
#[derive(Debug)]
pub struct Initialized {
    /// The admin's generated password (shown once, stored only hashed).
    pub admin_password: String,
    /// The root key's id: the fingerprint operators compare at pairing.
    pub root_fingerprint: KeyId,
    /// The root node's id.
    pub root_node: NodeId,
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The key files could not be made (or already exist).
    #[error(transparent)]
    Keys(#[from] keys::KeyFileError),
    /// The store could not be made.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The data directory could not be made.
    #[error("{0}")]
    Io(String),
}

// Where the store lives is the store's; re-exported so
// `init::store_dir` keeps working.
pub use crate::store::store_dir;

/// Creates `data` with keys, store, root node and admin.
///
/// # Errors
/// [`InitError`]; an existing installation is never overwritten.
pub async fn init(data: &Path, now: DateTime<Utc>) -> Result<Initialized, InitError> {
    std::fs::create_dir_all(data).map_err(|e| InitError::Io(format!("{}: {e}", data.display())))?;
    if store_dir(data).exists() {
        return Err(InitError::Io(format!(
            "{} already holds a store: refusing to initialize over it",
            data.display()
        )));
    }
    let root_key = keys::create(data, now)?;
    let store = Store::new(std::sync::Arc::new(SledStorage::open(&store_dir(data))?));
    let root = Node {
        id: NodeId::new(new_id("n-")),
        parent: None,
        name: "root".into(),
        restricted: false,
        created_by: None,
        created_at: now,
        content_manager_email: None,
        strict_feeds: false,
        created_at_root_level: true,
        locale: crate::tenancy::NodeLocale::default(),
    };
    let admin_password = new_password();
    let password = admin_password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| InitError::Io(e.to_string()))?
        .map_err(|e| InitError::Io(e.to_string()))?;
    let admin = User {
        id: UserId::new(new_id("u-")),
        name: ADMIN_NAME.into(),
        email: "admin@signet.invalid".into(),
        role: Role::Admin,
        domain: vec![root.id.clone()],
        requires_approval: false,
        disabled: false,
        password_hash,
        created_at: now,
        created_by: None,
    };
    let mut batch = WriteBatch::new();
    batch.put(NODES, root.id.as_str(), &root)?;
    crate::identity::users::put_user_batch(&mut batch, &admin)?;
    store.apply(batch).await?;
    Ok(Initialized {
        admin_password,
        root_fingerprint: root_key.key_id(),
        root_node: root.id,
    })
}
