//! The user repository and the users service (S8, S13, T3).
//!
//! Owns: the user records and their login-name index ([`USER_NAMES`]),
//! written only here ([`put_user`], [`insert_user`], [`remove_user`]); the
//! rules of user changes — Manager and above act on users whose whole
//! domain lies inside their own ([`Actor::sees_user`]), never grant a role
//! above their own, never change their own role or domain; a new name must
//! not be taken or look like an existing one, checked inside the
//! transaction that writes it — and their audit entries. Password hashing
//! (slow, bounded, S12) happens before the transaction. Must not: know HTTP.

use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::{NodeTree, Role};

use super::names::{self, check_login_name};
use super::sessions::revoke_all_in;
use super::views::{CreateUser, UpdateUser};
use super::{
    Actor, IdentityError, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, USER_NAMES, USERS, User, name_key,
    new_id,
};
use crate::app::Hub;
use crate::store::{Store, StoreError, Tx, WriteBatch};
use crate::tenancy::{load_tree, load_tree_in};

/// The most nodes one user's domain may hold.
pub const MAX_DOMAIN_NODES: usize = 32;

/// Adds `user` and its login-name index to `batch`: the one place both are
/// written (also for `init`, which writes no transaction).
///
/// # Errors
/// Never in practice (a user always encodes).
pub fn put_user_batch(batch: &mut WriteBatch, user: &User) -> Result<(), StoreError> {
    batch.put(USERS, user.id.as_str(), user)?;
    batch.put(USER_NAMES, &name_key(&user.name), &user.id)?;
    Ok(())
}

/// Stores `user` (new or changed) with its login-name index in `tx`.
///
/// # Errors
/// Never in practice (a user always encodes).
pub fn put_user(tx: &mut Tx, user: &User) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    put_user_batch(&mut batch, user)?;
    tx.include(batch);
    Ok(())
}

/// Creates `user` in `tx` with its login-name index, refusing a name that
/// is taken ([`IdentityError::NameTaken`]) or looks like an existing one
/// ([`IdentityError::Confusable`], S13). Both are read inside `tx`, so two
/// concurrent creations cannot both take a name. `user.name` is a name
/// [`names::check_login_name`] returned. What the access groups' CSV import
/// calls to create members.
///
/// # Errors
/// As above, or when the store fails.
pub fn insert_user(tx: &mut Tx, user: &User) -> Result<(), IdentityError> {
    if tx.contains(USER_NAMES, &name_key(&user.name))? {
        return Err(IdentityError::NameTaken(user.name.clone()));
    }
    unlike(&user.name, &users_in(tx)?)?;
    put_user(tx, user)?;
    Ok(())
}

/// Refuses `name` when it looks like the name of one of `users`.
fn unlike(name: &str, users: &[User]) -> Result<(), IdentityError> {
    names::check_not_confusable(name, users.iter().map(|u| u.name.as_str()))
        .map_err(IdentityError::Confusable)
}

/// Refuses (`Confusable`) a login name that looks like the name of a user
/// as stored now, outside a transaction: a creation should use
/// [`insert_user`], which checks inside its own.
///
/// # Errors
/// [`IdentityError::Confusable`], or the store's error.
pub fn check_unlike_others(hub: &Hub, name: &str) -> Result<(), IdentityError> {
    unlike(name, &hub.store.scan::<User>(USERS, "")?)
}

/// Deletes `user`, its login-name index and every session of it in `tx`.
///
/// # Errors
/// When the store fails.
pub fn remove_user(tx: &mut Tx, user: &User) -> Result<usize, StoreError> {
    let revoked = revoke_all_in(tx, &user.id)?;
    tx.delete(USERS, user.id.as_str());
    tx.delete(USER_NAMES, &name_key(&user.name));
    Ok(revoked)
}

/// Every user, as `tx` sees them.
///
/// # Errors
/// When the store fails.
pub fn users_in(tx: &mut Tx) -> Result<Vec<User>, StoreError> {
    tx.scan(USERS, "")
}

/// The user whose login name is `name` (any spelling [`name_key`] folds).
///
/// # Errors
/// When the store fails.
pub fn user_by_name(store: &Store, name: &str) -> Result<Option<User>, StoreError> {
    match store.get::<UserId>(USER_NAMES, &name_key(name))? {
        Some(id) => store.get(USERS, id.as_str()),
        None => Ok(None),
    }
}

/// A login name as typed, normalized (S13), or 400 `invalid_name`.
///
/// # Errors
/// [`IdentityError::Invalid`].
pub fn login_name(raw: &str) -> Result<String, IdentityError> {
    check_login_name(raw).map_err(|e| IdentityError::invalid("invalid_name", e.to_string()))
}

/// An e-mail address (S13), or 400 `invalid_email`.
///
/// # Errors
/// [`IdentityError::Invalid`].
pub fn email(raw: &str) -> Result<(), IdentityError> {
    names::check_email(raw).map_err(|e| IdentityError::invalid("invalid_email", e.to_string()))
}

/// A password a user may set: 12 to 1024 bytes, or 400 `weak_password`.
///
/// # Errors
/// [`IdentityError::Invalid`].
pub fn check_password(password: &str) -> Result<(), IdentityError> {
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
        Ok(())
    } else {
        Err(IdentityError::invalid(
            "weak_password",
            format!("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes"),
        ))
    }
}

/// Hashes `password` off the async runtime, within the hub's bound on
/// concurrent hashes (S12). Never inside a transaction.
///
/// # Errors
/// [`IdentityError::Hash`]: busy when every slot stayed taken.
pub async fn hash(hub: &Hub, password: String) -> Result<String, IdentityError> {
    Ok(hub.hashing.hash(password).await?)
}

/// A domain must be 1 to 32 existing nodes, each inside the actor's domain.
fn check_domain(actor: &Actor, tree: &NodeTree, domain: &[NodeId]) -> Result<(), IdentityError> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN_NODES {
        return Err(IdentityError::invalid(
            "invalid_domain",
            format!("domain must list 1 to {MAX_DOMAIN_NODES} nodes"),
        ));
    }
    if let Some(node) = domain
        .iter()
        .find(|n| !tree.contains(n) || !actor.sees(tree, n))
    {
        return Err(IdentityError::invalid(
            "invalid_domain",
            format!("node {node} is not in your domain"),
        ));
    }
    Ok(())
}

/// The user `id` if the actor sees it, read in `tx` with the tree.
fn visible_in(tx: &mut Tx, actor: &Actor, id: &str) -> Result<User, IdentityError> {
    let (tree, _) = load_tree_in(tx)?;
    tx.get::<User>(USERS, id)?
        .filter(|user| actor.sees_user(&tree, user))
        .ok_or(IdentityError::NotFound)
}

/// Users the actor may see (Manager+), optionally those whose name or
/// e-mail holds `q` (case aside).
///
/// # Errors
/// [`IdentityError::RoleTooLow`], or the store's error.
pub fn list_users(hub: &Hub, actor: &Actor, q: Option<&str>) -> Result<Vec<User>, IdentityError> {
    actor.require(Role::Manager)?;
    let needle = q.map(str::to_lowercase);
    let (tree, _) = load_tree(&hub.store)?;
    let users: Vec<User> = hub.store.scan(USERS, "")?;
    Ok(users
        .into_iter()
        .filter(|u| actor.sees_user(&tree, u))
        .filter(|u| {
            needle.as_ref().is_none_or(|q| {
                u.name.to_lowercase().contains(q) || u.email.to_lowercase().contains(q)
            })
        })
        .collect())
}

/// One user the actor may see.
///
/// # Errors
/// [`IdentityError::NotFound`], or the store's error.
pub fn get_user(hub: &Hub, actor: &Actor, id: &str) -> Result<User, IdentityError> {
    let (tree, _) = load_tree(&hub.store)?;
    hub.store
        .get::<User>(USERS, id)?
        .filter(|user| actor.sees_user(&tree, user))
        .ok_or(IdentityError::NotFound)
}

/// Creates a user inside the actor's domain (Manager+), with a role no
/// higher than the actor's and a login name neither taken nor confusable.
///
/// # Errors
/// [`IdentityError`] saying why not.
pub async fn create_user(
    hub: &Hub,
    actor: &Actor,
    request: CreateUser,
) -> Result<User, IdentityError> {
    actor.require(Role::Manager)?;
    let name = login_name(&request.name)?;
    email(&request.email)?;
    check_password(&request.password)?;
    check_domain(actor, &load_tree(&hub.store)?.0, &request.domain)?;
    if request.role > actor.user.role {
        return Err(IdentityError::Forbidden(
            "cannot grant a role above your own",
        ));
    }
    let password_hash = hash(hub, request.password.clone()).await?;
    let user = User {
        id: UserId::new(new_id("u-")),
        name,
        email: request.email,
        role: request.role,
        domain: request.domain,
        requires_approval: request.requires_approval,
        disabled: false,
        password_hash,
        created_at: hub.now(),
        created_by: Some(actor.user.id.clone()),
    };
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            check_domain(actor, &tree, &user.domain)?;
            insert_user(tx, &user)?;
            let detail =
                serde_json::json!({"name": user.name, "role": user.role, "domain": user.domain});
            let scope = user.domain.first().cloned();
            actor
                .audit(
                    user.created_at,
                    "user.create",
                    user.id.as_str(),
                    scope,
                    detail,
                )
                .put(tx)?;
            Ok::<_, IdentityError>(())
        })
        .await?;
    Ok(user)
}

/// Whether `actor` may apply `request` to `user`: email and password
/// oneself or Manager+; role, domain, approval and disabled only Manager+
/// over others whose role is not above theirs.
fn check_update(actor: &Actor, user: &User, request: &UpdateUser) -> Result<(), IdentityError> {
    let is_self = user.id == actor.user.id;
    let manages = !is_self && actor.user.role >= Role::Manager && user.role <= actor.user.role;
    let wants_admin_fields = request.role.is_some()
        || request.domain.is_some()
        || request.requires_approval.is_some()
        || request.disabled.is_some();
    if wants_admin_fields && !manages {
        return Err(IdentityError::Forbidden(if is_self {
            "you cannot change your own role, domain, approval or disabled state"
        } else {
            "needs the Manager role or above, over a user whose role is not above yours"
        }));
    }
    if !is_self && !manages {
        return Err(IdentityError::Forbidden("cannot change this user"));
    }
    if request.role.is_some_and(|role| role > actor.user.role) {
        return Err(IdentityError::Forbidden(
            "cannot grant a role above your own",
        ));
    }
    Ok(())
}

/// Changes a user (see [`check_update`]); disabling revokes their sessions
/// at once, and a role or domain change applies to their next request (T3).
///
/// # Errors
/// [`IdentityError`] saying why not.
pub async fn update_user(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: UpdateUser,
) -> Result<User, IdentityError> {
    if let Some(address) = &request.email {
        email(address)?;
    }
    let password_hash = match &request.password {
        Some(password) => {
            check_password(password)?;
            Some(hash(hub, password.clone()).await?)
        }
        None => None,
    };
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let mut user = visible_in(tx, actor, id)?;
            check_update(actor, &user, &request)?;
            if let Some(role) = request.role {
                user.role = role;
            }
            if let Some(domain) = &request.domain {
                check_domain(actor, &load_tree_in(tx)?.0, domain)?;
                user.domain.clone_from(domain);
            }
            if let Some(address) = &request.email {
                user.email.clone_from(address);
            }
            if let Some(hash) = &password_hash {
                user.password_hash.clone_from(hash);
            }
            if let Some(requires_approval) = request.requires_approval {
                user.requires_approval = requires_approval;
            }
            let mut revoked = 0;
            if let Some(disabled) = request.disabled {
                user.disabled = disabled;
                if disabled {
                    revoked = revoke_all_in(tx, &user.id)?;
                }
            }
            put_user(tx, &user)?;
            let detail = serde_json::json!({"role": user.role, "domain": user.domain,
                "disabled": user.disabled, "requires_approval": user.requires_approval,
                "sessions_revoked": revoked});
            let scope = user.domain.first().cloned();
            actor
                .audit(now, "user.update", user.id.as_str(), scope, detail)
                .put(tx)?;
            Ok(user)
        })
        .await
}

/// Deletes a user (Manager+, not oneself, not above one's role) and
/// revokes their sessions in the same transaction.
///
/// # Errors
/// [`IdentityError`] saying why not.
pub async fn delete_user(hub: &Hub, actor: &Actor, id: &str) -> Result<(), IdentityError> {
    actor.require(Role::Manager)?;
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let user = visible_in(tx, actor, id)?;
            if user.id == actor.user.id {
                return Err(IdentityError::Forbidden("you cannot delete yourself"));
            }
            if user.role > actor.user.role {
                return Err(IdentityError::Forbidden(
                    "cannot delete a user whose role is above yours",
                ));
            }
            remove_user(tx, &user)?;
            let scope = user.domain.first().cloned();
            let detail = serde_json::json!({"name": user.name});
            actor
                .audit(now, "user.delete", user.id.as_str(), scope, detail)
                .put(tx)?;
            Ok(())
        })
        .await
}

/// Revokes every session of a user (oneself, or a user the actor sees whose
/// role is not above theirs).
///
/// # Errors
/// [`IdentityError`] saying why not.
pub async fn revoke_sessions(hub: &Hub, actor: &Actor, id: &str) -> Result<(), IdentityError> {
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let user = visible_in(tx, actor, id)?;
            if user.id != actor.user.id && user.role > actor.user.role {
                return Err(IdentityError::Forbidden(
                    "cannot revoke sessions of a user whose role is above yours",
                ));
            }
            let revoked = revoke_all_in(tx, &user.id)?;
            let scope = user.domain.first().cloned();
            let detail = serde_json::json!({"revoked": revoked});
            actor
                .audit(now, "user.revoke_sessions", user.id.as_str(), scope, detail)
                .put(tx)?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests;
