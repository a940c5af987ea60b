//! Joining an access group without an operator (L6, L9) — what invites
//! ([`super::invites`]), self-signup ([`super::signup`]), the shop
//! ([`super::shop`]) and CSV import ([`super::import`]) share: the
//! accounts made for new members and the join itself.
//!
//! Owns: new member accounts (Viewers whose login name is the lowercase
//! e-mail and whose domain is the group's node; S13 name checks against the
//! accounts a transaction read), joining with the group-full rule, and
//! queueing mail inside a transaction. Must not: know HTTP.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use signet_common::ids::UserId;
use signet_common::permissions::Role;

use super::checks;
use super::error::AccessGroupError;
use super::repo::{self, anonymous_audit};
use super::types::Joined;
use super::{AccessGroup, Member, MemberRef, NO_PASSWORD, email_key, window};
use crate::app::Hub;
use crate::identity::names::{check_login_name, check_not_confusable};
use crate::identity::{USER_NAMES, USERS, User, name_key, new_id};
use crate::mail::{self, Mail};
use crate::store::{Tx, WriteBatch};

/// The accounts that exist, as a transaction read them: what a new member
/// account is checked against.
pub struct Accounts {
    /// Every user.
    pub users: Vec<User>,
    /// Every login-name index key ([`name_key`]).
    pub names: HashSet<String>,
}

impl Accounts {
    /// Reads the accounts inside `tx`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn load(tx: &mut Tx) -> Result<Self, AccessGroupError> {
        Ok(Self {
            users: tx.scan(USERS, "")?,
            names: tx.scan_keys(USER_NAMES, "")?.into_iter().collect(),
        })
    }

    /// The user whose e-mail is `email` (case-insensitive), if any.
    #[must_use]
    pub fn by_email(&self, email: &str) -> Option<&User> {
        let wanted = email_key(email);
        self.users.iter().find(|u| email_key(&u.email) == wanted)
    }

    /// A new Viewer account for `email` at `group`'s node: its login name is
    /// the lowercase address, which must be a valid login name (400
    /// `invalid_name`), free (409 `name_taken`) and unlike every other (409
    /// `name_confusable`, S13).
    ///
    /// # Errors
    /// As above.
    pub fn new_member_user(
        &self,
        group: &AccessGroup,
        email: &str,
        password_hash: Option<String>,
        (now, created_by): (DateTime<Utc>, Option<UserId>),
    ) -> Result<User, AccessGroupError> {
        let name = check_login_name(&email_key(email))
            .map_err(|e| AccessGroupError::invalid("invalid_name", e.to_string()))?;
        if self.names.contains(&name_key(&name)) {
            return Err(AccessGroupError::conflict(
                "name_taken",
                format!("the login name {name:?} is taken by another account"),
            ));
        }
        check_not_confusable(&name, self.users.iter().map(|u| u.name.as_str()))
            .map_err(|e| AccessGroupError::conflict("name_confusable", e.to_string()))?;
        Ok(User {
            id: UserId::new(new_id("u-")),
            name,
            email: email.trim().to_owned(),
            role: Role::Viewer,
            domain: vec![group.node.clone()],
            requires_approval: false,
            disabled: false,
            password_hash: password_hash.unwrap_or_else(|| NO_PASSWORD.to_owned()),
            created_at: now,
            created_by,
        })
    }
}

/// `who`'s current membership of `group`, or a new one made by `join`
/// (refused with 409 `group_full` when the group is full) and stored.
/// Returns the membership and whether it was already current.
pub(super) fn keep_or_join(
    tx: &mut Tx,
    group: &AccessGroup,
    who: MemberRef,
    join: impl FnOnce(MemberRef) -> Member,
) -> Result<(Member, bool), AccessGroupError> {
    if let Some(member) = repo::member(tx, &group.id, &who)?.filter(Member::is_current) {
        return Ok((member, true));
    }
    checks::check_room(repo::current_members(tx, &group.id)?)?;
    let member = join(who);
    repo::put_member(tx, &member)?;
    Ok((member, false))
}

/// Queues `mail` in the transaction (the mailer is woken after the commit).
pub(super) fn enqueue(tx: &mut Tx, mail: Mail, now: DateTime<Utc>) -> Result<(), AccessGroupError> {
    let mut batch = WriteBatch::new();
    mail::enqueue(&mut batch, mail, now)?;
    tx.include(batch);
    Ok(())
}

/// Hashes `password` within the hub's bound on concurrent hashes (S12).
pub(super) async fn hash(hub: &Hub, password: String) -> Result<String, AccessGroupError> {
    Ok(hub.hashing.hash(password).await?)
}

/// Someone joining by themselves (invite, signup): their account, whether
/// this request made it, and whether it set its password.
pub(super) struct Joiner {
    /// The account.
    pub user: User,
    /// Whether the account was made now.
    pub created: bool,
    /// Whether its password was set now.
    pub password_set: bool,
}

impl Joiner {
    /// The account for `email`: the one that exists — given
    /// `password_hash` when it has no password yet and `existing_too` — or
    /// a new member account with it. Either is stored in `tx` when it
    /// changed.
    ///
    /// # Errors
    /// [`Accounts::new_member_user`]'s, or the store's.
    pub fn find_or_make(
        tx: &mut Tx,
        group: &AccessGroup,
        email: &str,
        (password_hash, existing_too): (Option<&String>, bool),
        now: DateTime<Utc>,
    ) -> Result<Self, AccessGroupError> {
        let accounts = Accounts::load(tx)?;
        if let Some(user) = accounts.by_email(email) {
            let mut user = user.clone();
            let password_set =
                existing_too && password_hash.is_some() && user.password_hash == NO_PASSWORD;
            if let (true, Some(hash)) = (password_set, password_hash) {
                user.password_hash.clone_from(hash);
                crate::identity::users::put_user(tx, &user)?;
            }
            return Ok(Self {
                user,
                created: false,
                password_set,
            });
        }
        let user = accounts.new_member_user(group, email, password_hash.cloned(), (now, None))?;
        crate::identity::users::put_user(tx, &user)?;
        Ok(Self {
            user,
            created: true,
            password_set: password_hash.is_some(),
        })
    }

    /// Joins the group (keeping a current membership: `already_member`),
    /// records `action` as done by the joiner from `from` with `detail`
    /// plus who joined, and answers.
    ///
    /// # Errors
    /// `Conflict` (`group_full`), or the store's error.
    pub fn join(
        self,
        tx: &mut Tx,
        (group, now, from): (&AccessGroup, DateTime<Utc>, &str),
        (action, mut detail): (&str, serde_json::Value),
        join: impl FnOnce(MemberRef) -> Member,
    ) -> Result<Joined, AccessGroupError> {
        let user = self.user;
        let (member, already_member) = keep_or_join(tx, group, MemberRef::user(&user.id), join)?;
        if let Some(detail) = detail.as_object_mut() {
            detail.insert("user".into(), serde_json::json!(user.id));
            detail.insert("user_created".into(), self.created.into());
            detail.insert("already_member".into(), already_member.into());
        }
        let who = (Some(&user.id), user.name.as_str());
        repo::record(tx, anonymous_audit(now, from, who, action, group, detail))?;
        Ok(Joined {
            group: group.id.clone(),
            window: window(group, &member),
            user_id: user.id,
            login_name: user.name,
            user_created: self.created,
            password_set: self.password_set,
            already_member,
        })
    }
}
