//! Joining an access group without an operator (L6, L9): invites,
//! self-signup and the shop hook, and the member accounts they make.
//!
//! Owns: the invite rules (expiring, single use, bounded), the self-signup
//! rules (enabled group, exactly matching domain, mail confirmation, one
//! mail per address per hour — S12), the shop hook (its key, idempotence by
//! order id), the accounts made for new members (Viewers whose login name is
//! the lowercase e-mail and whose domain is the group's node), their audit
//! entries, and waking the mailer after a commit that queued mail. Must
//! not: hold a transaction while a password is hashed, nor know HTTP.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::UserId;
use signet_common::permissions::{Domain, NodeTree, Role};

use super::checks::{self, seconds};
use super::error::AccessGroupError;
use super::repo::{self, anonymous_audit, group_audit};
use super::service::joined;
use super::types::{
    AcceptInvite, ConfirmSignup, CreateInvite, InviteView, Joined, ShopOrderRequest, ShopResult,
    SignupPending, SignupRequest,
};
use super::{
    AccessGroup, DEFAULT_INVITE_TTL_SECS, GROUPS, INVITE_TOKENS, INVITES, Invite, MAX_OPEN_INVITES,
    MAX_PENDING_SIGNUPS, Member, MemberRef, MemberSource, NO_PASSWORD, PendingSignup, SHOP_ORDERS,
    SIGNUP_MAIL_INTERVAL_SECS, SIGNUP_MAILS, SIGNUP_TOKENS, SIGNUP_TTL_SECS, SIGNUPS, ShopOrder,
    email_domain_allowed, email_key, group_prefix, window,
};
use crate::app::Hub;
use crate::identity::names::{check_login_name, check_not_confusable};
use crate::identity::{Actor, USER_NAMES, USERS, User, name_key, new_id, new_token, token_key};
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
fn keep_or_join(
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
fn enqueue(tx: &mut Tx, mail: Mail, now: DateTime<Utc>) -> Result<(), AccessGroupError> {
    let mut batch = WriteBatch::new();
    mail::enqueue(&mut batch, mail, now)?;
    tx.include(batch);
    Ok(())
}

/// A group's invites, open, used and expired (Manager+).
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn invites(
    hub: &Hub,
    actor: &Actor,
    id: &str,
) -> Result<Vec<InviteView>, AccessGroupError> {
    actor.require(Role::Manager)?;
    let invites: Vec<Invite> = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            Ok::<_, AccessGroupError>(tx.scan(INVITES, &group_prefix(&group.id))?)
        })
        .await?;
    let now = hub.now();
    Ok(invites.iter().map(|i| InviteView::new(i, now)).collect())
}

/// Invites an address (Manager+, L6): mails a one-click, single-use token
/// that expires. Only the token's SHA-256 is stored.
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, `Conflict` (`too_many_invites`),
/// or the store's error.
pub async fn create_invite(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: CreateInvite,
) -> Result<InviteView, AccessGroupError> {
    actor.require(Role::Manager)?;
    checks::email(&request.email)?;
    let ttl = request.expires_in_secs.unwrap_or(DEFAULT_INVITE_TTL_SECS);
    checks::invite_ttl(ttl)?;
    let now = hub.now();
    checks::end_date(now, request.end_date)?;
    let (token, token_hash) = new_token();
    let invite = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let open = tx
                .scan::<Invite>(INVITES, &group_prefix(&group.id))?
                .iter()
                .filter(|i| i.used_at.is_none() && now < i.expires_at)
                .count();
            if open >= MAX_OPEN_INVITES {
                return Err(AccessGroupError::conflict(
                    "too_many_invites",
                    format!("a group may have at most {MAX_OPEN_INVITES} open invites"),
                ));
            }
            let invite = Invite {
                id: new_id("inv-"),
                group: group.id.clone(),
                email: request.email.trim().to_owned(),
                end_date: request.end_date,
                token_hash: token_hash.clone(),
                created_at: now,
                created_by: actor.user.id.clone(),
                expires_at: now + seconds(ttl),
                used_at: None,
                used_by: None,
            };
            repo::put_invite(tx, &invite)?;
            enqueue(tx, invite_mail(actor, &group, &invite, &token), now)?;
            let detail = serde_json::json!({"invite": invite.id, "email": invite.email,
                "expires_at": invite.expires_at, "end_date": invite.end_date});
            repo::record(
                tx,
                group_audit(actor, now, "access_group.invite", &group, detail),
            )?;
            Ok(invite)
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(InviteView::new(&invite, now))
}

/// The invitation mail, carrying the token.
fn invite_mail(actor: &Actor, group: &AccessGroup, invite: &Invite, token: &str) -> Mail {
    Mail {
        to: invite.email.clone(),
        subject: format!("Invitation to {}", group.name),
        body: format!(
            "{} invites you to the access group \"{}\".\n\n\
             To join, accept the invitation before {} (it works once):\n\
             POST /api/v1/access-groups/invites/accept with the JSON body \
             {{\"token\": \"{token}\"}} (add \"password\" to set one for a new account).\n\n\
             token: {token}\n",
            actor.user.name,
            group.name,
            invite.expires_at.to_rfc3339(),
        ),
    }
}

/// Withdraws an invite (Manager+): its token stops working.
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn revoke_invite(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    invite_id: &str,
) -> Result<(), AccessGroupError> {
    actor.require(Role::Manager)?;
    hub.store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let invite = tx
                .get::<Invite>(INVITES, &repo::invite_key(&group.id, invite_id))?
                .ok_or(AccessGroupError::NotFound("invite"))?;
            repo::delete_invite(tx, &invite);
            let detail = serde_json::json!({"invite": invite.id, "email": invite.email});
            repo::record(
                tx,
                group_audit(
                    actor,
                    hub.now(),
                    "access_group.invite_revoke",
                    &group,
                    detail,
                ),
            )?;
            Ok(())
        })
        .await
}

/// Hashes `password` within the hub's bound on concurrent hashes (S12).
async fn hash(hub: &Hub, password: String) -> Result<String, AccessGroupError> {
    Ok(hub.hashing.hash(password).await?)
}

/// Accepts an invite (no login; the mailed token is the credential, L6).
/// Makes a Viewer account for the address if none exists, and sets the
/// password given on an account that has none. Works once, before it
/// expires. The caller has checked the password's length.
///
/// # Errors
/// `Invalid`, `Unknown` (`invite_not_found`), `Conflict` (`invite_used`,
/// `name_taken`, `group_full`), `Gone` (`invite_expired`), `Hashing`, or
/// the store's error.
pub async fn accept_invite(
    hub: &Hub,
    from: &str,
    request: AcceptInvite,
) -> Result<Joined, AccessGroupError> {
    checks::token(&request.token)?;
    let password_hash = match request.password {
        Some(password) => Some(hash(hub, password).await?),
        None => None,
    };
    let token_hash = token_key(&request.token);
    hub.store
        .transact(|tx| {
            let now = hub.now();
            let mut invite = usable_invite(tx, &token_hash, now)?;
            let unknown = || AccessGroupError::Unknown {
                code: "invite_not_found",
                message: "unknown invite".into(),
            };
            let group: AccessGroup = tx.get(GROUPS, invite.group.as_str())?.ok_or_else(unknown)?;
            let accounts = Accounts::load(tx)?;
            let (user, user_created, password_set) = match accounts.by_email(&invite.email) {
                Some(user) => {
                    let mut user = user.clone();
                    let set = password_hash.is_some() && user.password_hash == NO_PASSWORD;
                    if let (true, Some(hash)) = (set, &password_hash) {
                        user.password_hash.clone_from(hash);
                        tx.put(USERS, user.id.as_str(), &user)?;
                    }
                    (user, false, set)
                }
                None => {
                    let user = accounts.new_member_user(
                        &group,
                        &invite.email,
                        password_hash.clone(),
                        (now, None),
                    )?;
                    repo::put_user(tx, &user)?;
                    (user, true, password_hash.is_some())
                }
            };
            let source = MemberSource::Invite {
                invite_id: invite.id.clone(),
            };
            let (member, already_member) =
                keep_or_join(tx, &group, MemberRef::user(&user.id), |who| {
                    joined(&group, who, now, invite.end_date, None, source)
                })?;
            invite.used_at = Some(now);
            invite.used_by = Some(user.id.clone());
            repo::put_invite(tx, &invite)?;
            let detail = serde_json::json!({"invite": invite.id, "user": user.id,
                "user_created": user_created, "already_member": already_member});
            let entry = anonymous_audit(
                now,
                from,
                (Some(&user.id), &user.name),
                "access_group.invite_accept",
                &group,
                detail,
            );
            repo::record(tx, entry)?;
            Ok(Joined {
                group: group.id.clone(),
                window: window(&group, &member),
                user_id: user.id,
                login_name: user.name,
                user_created,
                password_set,
                already_member,
            })
        })
        .await
}

/// The invite whose token hashes to `token_hash`, when it may still be
/// accepted at `now`.
fn usable_invite(
    tx: &mut Tx,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Invite, AccessGroupError> {
    let unknown = || AccessGroupError::Unknown {
        code: "invite_not_found",
        message: "unknown invite".into(),
    };
    let key: String = tx.get(INVITE_TOKENS, token_hash)?.ok_or_else(unknown)?;
    let invite: Invite = tx.get(INVITES, &key)?.ok_or_else(unknown)?;
    if invite.used_at.is_some() {
        return Err(AccessGroupError::conflict(
            "invite_used",
            "this invite was already accepted",
        ));
    }
    if now >= invite.expires_at {
        return Err(AccessGroupError::gone(
            "invite_expired",
            format!("this invite expired at {}", invite.expires_at.to_rfc3339()),
        ));
    }
    if invite.end_date.is_some_and(|end| end <= now) {
        return Err(AccessGroupError::gone(
            "invite_expired",
            "the membership this invite grants has already ended",
        ));
    }
    Ok(invite)
}

/// The group `id` when it takes self-signups from `email` (L6): else 404
/// for a closed group, 403 `domain_not_allowed` for another domain.
fn signup_group(group: Option<AccessGroup>, email: &str) -> Result<AccessGroup, AccessGroupError> {
    let group = group
        .filter(|g| g.self_signup)
        .ok_or(AccessGroupError::NotFound("access group with self-signup"))?;
    if !email_domain_allowed(email, &group.signup_domains) {
        return Err(AccessGroupError::Refused {
            code: "domain_not_allowed",
            message: "this group does not allow self-signup from that e-mail domain".into(),
        });
    }
    Ok(group)
}

/// Refuses (429) a signup for `email` when a confirmation mail went to it
/// less than [`SIGNUP_MAIL_INTERVAL_SECS`] ago (S12): the earlier mail's
/// token stays the one that works. `sent` is when the last one went.
///
/// # Errors
/// [`AccessGroupError::MailedRecently`].
pub fn check_signup_mail_interval(
    sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let Some(sent) = sent else {
        return Ok(());
    };
    let next = sent + TimeDelta::seconds(SIGNUP_MAIL_INTERVAL_SECS);
    if now >= next {
        return Ok(());
    }
    let retry_after = u64::try_from((next - now).num_seconds().max(1)).unwrap_or(1);
    Err(AccessGroupError::MailedRecently {
        sent,
        next,
        retry_after,
    })
}

/// Asks to join a group by self-signup (no login, L6): mails a
/// confirmation token; nothing else happens until it is confirmed (within
/// 24 hours). Asking again replaces the earlier request. The caller has
/// checked the password's length.
///
/// # Errors
/// `Invalid`, `NotFound`, `Refused` (`domain_not_allowed`),
/// `MailedRecently`, `Conflict` (`too_many_signups`), `Hashing`, or the
/// store's error.
pub async fn request_signup(
    hub: &Hub,
    from: &str,
    id: &str,
    request: SignupRequest,
) -> Result<SignupPending, AccessGroupError> {
    checks::email(&request.email)?;
    checks::display_name(request.name.as_deref())?;
    let email = request.email.trim().to_owned();
    signup_group(hub.store.get(GROUPS, id)?, &email)?;
    // S12: one mail per address per hour, checked before the costly hash
    // and again inside the transaction.
    check_signup_mail_interval(hub.store.get(SIGNUP_MAILS, &email_key(&email))?, hub.now())?;
    let password_hash = hash(hub, request.password).await?;
    let (token, token_hash) = new_token();
    let signup = hub
        .store
        .transact(|tx| {
            let now = hub.now();
            check_signup_mail_interval(tx.get(SIGNUP_MAILS, &email_key(&email))?, now)?;
            let group = signup_group(tx.get(GROUPS, id)?, &email)
                .map_err(|_| AccessGroupError::NotFound("access group with self-signup"))?;
            clear_signups(tx, &group, &email, now)?;
            let signup = PendingSignup {
                group: group.id.clone(),
                email: email.clone(),
                display_name: request.name.as_deref().map(|n| n.trim().to_owned()),
                password_hash: password_hash.clone(),
                token_hash: token_hash.clone(),
                created_at: now,
                expires_at: now + seconds(SIGNUP_TTL_SECS),
            };
            repo::put_signup(tx, &signup)?;
            tx.put(SIGNUP_MAILS, &email_key(&email), &now)?;
            enqueue(tx, signup_mail(&group, &signup, &token), now)?;
            let detail = serde_json::json!({"email": email});
            let entry = anonymous_audit(
                now,
                from,
                (None, &email),
                "access_group.signup_request",
                &group,
                detail,
            );
            repo::record(tx, entry)?;
            Ok::<_, AccessGroupError>(signup)
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(SignupPending {
        status: "confirmation_sent",
        expires_at: signup.expires_at,
    })
}

/// Drops `email`'s earlier signup and every expired one of `group`; then
/// refuses (409 `too_many_signups`) when too many still wait.
fn clear_signups(
    tx: &mut Tx,
    group: &AccessGroup,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let mut pending = 0usize;
    for old in tx.scan::<PendingSignup>(SIGNUPS, &group_prefix(&group.id))? {
        if email_key(&old.email) == email_key(email) || now >= old.expires_at {
            repo::delete_signup(tx, &old);
        } else {
            pending += 1;
        }
    }
    if pending >= MAX_PENDING_SIGNUPS {
        return Err(AccessGroupError::conflict(
            "too_many_signups",
            "too many signups wait for confirmation; try again later",
        ));
    }
    Ok(())
}

/// The confirmation mail, carrying the token.
fn signup_mail(group: &AccessGroup, signup: &PendingSignup, token: &str) -> Mail {
    Mail {
        to: signup.email.clone(),
        subject: format!("Confirm your signup to {}", group.name),
        body: format!(
            "Someone (we hope you) asked to join the access group \"{}\" with this address.\n\n\
             To confirm, before {}:\n\
             POST /api/v1/access-groups/signup/confirm with the JSON body \
             {{\"token\": \"{token}\"}}\n\n\
             If it was not you, ignore this mail.\n\ntoken: {token}\n",
            group.name,
            signup.expires_at.to_rfc3339(),
        ),
    }
}

/// Confirms a self-signup (no login; the mailed token is the credential,
/// L6): makes the account if the address has none, and the membership.
///
/// # Errors
/// `Invalid`, `Unknown` (`signup_not_found`), `Gone` (`signup_expired`),
/// `Conflict` (`signup_closed`, `name_taken`, `group_full`), or the
/// store's error.
pub async fn confirm_signup(
    hub: &Hub,
    from: &str,
    request: ConfirmSignup,
) -> Result<Joined, AccessGroupError> {
    checks::token(&request.token)?;
    let token_hash = token_key(&request.token);
    hub.store
        .transact(|tx| {
            let now = hub.now();
            let signup = pending_signup(tx, &token_hash, now)?;
            let group = tx
                .get::<AccessGroup>(GROUPS, signup.group.as_str())?
                .filter(|g| g.self_signup && email_domain_allowed(&signup.email, &g.signup_domains))
                .ok_or_else(|| {
                    AccessGroupError::conflict(
                        "signup_closed",
                        "this group no longer takes self-signups",
                    )
                })?;
            let accounts = Accounts::load(tx)?;
            let (user, user_created) = match accounts.by_email(&signup.email) {
                Some(user) => (user.clone(), false),
                None => {
                    let hash = Some(signup.password_hash.clone());
                    let user =
                        accounts.new_member_user(&group, &signup.email, hash, (now, None))?;
                    repo::put_user(tx, &user)?;
                    (user, true)
                }
            };
            let name = signup.display_name.clone();
            let (member, already_member) =
                keep_or_join(tx, &group, MemberRef::user(&user.id), |who| {
                    joined(&group, who, now, None, name, MemberSource::SelfSignup)
                })?;
            repo::delete_signup(tx, &signup);
            let detail = serde_json::json!({"user": user.id, "user_created": user_created,
                "already_member": already_member});
            let entry = anonymous_audit(
                now,
                from,
                (Some(&user.id), &user.name),
                "access_group.signup_confirm",
                &group,
                detail,
            );
            repo::record(tx, entry)?;
            Ok(Joined {
                group: group.id.clone(),
                window: window(&group, &member),
                user_id: user.id,
                login_name: user.name,
                user_created,
                password_set: user_created,
                already_member,
            })
        })
        .await
}

/// The pending signup whose token hashes to `token_hash`, unexpired at `now`.
fn pending_signup(
    tx: &mut Tx,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<PendingSignup, AccessGroupError> {
    let unknown = || AccessGroupError::Unknown {
        code: "signup_not_found",
        message: "unknown signup".into(),
    };
    let key: String = tx.get(SIGNUP_TOKENS, token_hash)?.ok_or_else(unknown)?;
    let signup: PendingSignup = tx.get(SIGNUPS, &key)?.ok_or_else(unknown)?;
    if signup.token_hash != token_hash {
        return Err(unknown());
    }
    if now >= signup.expires_at {
        return Err(AccessGroupError::gone(
            "signup_expired",
            "this signup expired; sign up again",
        ));
    }
    Ok(signup)
}

/// Makes a new shop key for a group (Manager+, L9), replacing any earlier
/// one. Returns the key, shown once; only its SHA-256 is stored.
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn create_shop_key(
    hub: &Hub,
    actor: &Actor,
    id: &str,
) -> Result<String, AccessGroupError> {
    actor.require(Role::Manager)?;
    let (key, key_hash) = new_token();
    hub.store
        .transact(|tx| {
            let (mut group, _) = repo::visible_group(tx, actor, id)?;
            let replaced = group.shop_key_hash.replace(key_hash.clone()).is_some();
            repo::put_group(tx, &group)?;
            let detail = serde_json::json!({"replaced": replaced});
            repo::record(
                tx,
                group_audit(
                    actor,
                    hub.now(),
                    "access_group.shop_key_create",
                    &group,
                    detail,
                ),
            )?;
            Ok::<_, AccessGroupError>(())
        })
        .await?;
    Ok(key)
}

/// Deletes a group's shop key (Manager+): the shop hook stops working.
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn delete_shop_key(hub: &Hub, actor: &Actor, id: &str) -> Result<(), AccessGroupError> {
    actor.require(Role::Manager)?;
    hub.store
        .transact(|tx| {
            let (mut group, _) = repo::visible_group(tx, actor, id)?;
            if group.shop_key_hash.take().is_none() {
                return Ok(());
            }
            repo::put_group(tx, &group)?;
            let detail = serde_json::Value::Null;
            repo::record(
                tx,
                group_audit(
                    actor,
                    hub.now(),
                    "access_group.shop_key_delete",
                    &group,
                    detail,
                ),
            )?;
            Ok(())
        })
        .await
}

/// Whether the whole of `user`'s domain lies inside `group`'s node's subtree
/// (T4: the shop acts for the group's tenant).
fn within_group_node(tree: &NodeTree, user: &User, group: &AccessGroup) -> bool {
    let scope = Domain::new([group.node.clone()]);
    !user.domain.is_empty() && user.domain.iter().all(|n| scope.contains(tree, n))
}

/// The shop hook (L9): adds a paid member, authenticated by the group's
/// shop key (`key`, from `Authorization: Bearer`). Idempotent by order id:
/// a repeated order is answered (`replayed`) and not applied again; the
/// same order id for another address is 409. A new order for a current
/// member starts its membership afresh (a renewal).
///
/// # Errors
/// `WrongKey`, `Invalid`, `Conflict` (`order_conflict`,
/// `account_outside_tenant`, `name_taken`, `group_full`), or the store's
/// error.
pub async fn shop_member(
    hub: &Hub,
    from: &str,
    id: &str,
    key: Option<&str>,
    request: ShopOrderRequest,
) -> Result<ShopResult, AccessGroupError> {
    let key = key
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or(AccessGroupError::WrongKey(
            "expected 'Authorization: Bearer <shop key>'",
        ))?;
    let key_hash = token_key(key);
    hub.store
        .transact(|tx| {
            let group = tx
                .get::<AccessGroup>(GROUPS, id)?
                .filter(|g| g.shop_key_hash.as_deref() == Some(key_hash.as_str()))
                .ok_or(AccessGroupError::WrongKey("wrong shop key"))?;
            let order_id = checks::order_id(&request.order_id)?;
            checks::email(&request.email)?;
            checks::display_name(request.name.as_deref())?;
            let now = hub.now();
            checks::end_date(now, request.end_date)?;
            if let Some(order) =
                tx.get::<ShopOrder>(SHOP_ORDERS, &repo::order_key(&group.id, &order_id))?
            {
                return replayed_order(tx, &group, order, &request.email);
            }
            let order = ShopOrder {
                order_id,
                group: group.id.clone(),
                email: request.email.trim().to_owned(),
                user_id: UserId::from(""),
                at: now,
            };
            let name = request.name.as_deref().map(|n| n.trim().to_owned());
            shop_order(tx, from, &group, order, (name, request.end_date))
        })
        .await
}

/// The answer to an order already handled: its member's window, or 409
/// `order_conflict` when the order id came with another address.
fn replayed_order(
    tx: &mut Tx,
    group: &AccessGroup,
    order: ShopOrder,
    email: &str,
) -> Result<ShopResult, AccessGroupError> {
    if email_key(&order.email) != email_key(email) {
        return Err(AccessGroupError::conflict(
            "order_conflict",
            "this order id was already used for another address",
        ));
    }
    let member = repo::member(tx, &group.id, &MemberRef::user(&order.user_id))?
        .ok_or(AccessGroupError::NotFound("member"))?;
    Ok(ShopResult {
        order_id: order.order_id,
        user_id: order.user_id,
        replayed: true,
        window: window(group, &member),
    })
}

/// Applies a new shop order: finds or makes the buyer's account, starts a
/// membership (a renewal for a current member), stores the order.
fn shop_order(
    tx: &mut Tx,
    from: &str,
    group: &AccessGroup,
    mut order: ShopOrder,
    (name, end_date): (Option<String>, Option<DateTime<Utc>>),
) -> Result<ShopResult, AccessGroupError> {
    let now = order.at;
    let accounts = Accounts::load(tx)?;
    let (user, user_created) = match accounts.by_email(&order.email) {
        Some(user) => {
            let (tree, _) = crate::tenancy::load_tree_in(tx)?;
            if !within_group_node(&tree, user, group) {
                return Err(AccessGroupError::conflict(
                    "account_outside_tenant",
                    "the address belongs to an account outside this group's node",
                ));
            }
            (user.clone(), false)
        }
        None => {
            let user = accounts.new_member_user(group, &order.email, None, (now, None))?;
            repo::put_user(tx, &user)?;
            (user, true)
        }
    };
    let who = MemberRef::user(&user.id);
    let renewal = repo::member(tx, &group.id, &who)?.is_some_and(|m| m.is_current());
    if !renewal {
        checks::check_room(repo::current_members(tx, &group.id)?)?;
    }
    let source = MemberSource::Shop {
        order_id: order.order_id.clone(),
    };
    let member = joined(group, who, now, end_date, name, source);
    repo::put_member(tx, &member)?;
    order.user_id = user.id.clone();
    repo::put_order(tx, &order)?;
    let detail = serde_json::json!({"order_id": order.order_id, "user": user.id,
        "user_created": user_created, "renewal": renewal});
    let entry = anonymous_audit(
        now,
        from,
        (None, "shop"),
        "access_group.shop_member",
        group,
        detail,
    );
    repo::record(tx, entry)?;
    Ok(ShopResult {
        order_id: order.order_id,
        user_id: user.id,
        replayed: false,
        window: window(group, &member),
    })
}
