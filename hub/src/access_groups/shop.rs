//! The shop hook (L9): a shop adds a paid member with the group's shop key,
//! idempotent by order id.
//!
//! Owns: the shop key's lifecycle (only its SHA-256 is stored), the order
//! rules (a replay is answered, an order id reused for another address is
//! refused, an account outside the group's node is not the shop's to
//! enrol — T4), and their audit entries. Must not: know HTTP.

use chrono::{DateTime, Utc};
use signet_common::ids::UserId;
use signet_common::permissions::{Domain, NodeTree, Role};

use super::checks::{self};
use super::error::AccessGroupError;
use super::joining::Accounts;
use super::repo::{self, anonymous_audit};
use super::service::joined;
use super::types::{ShopOrderRequest, ShopResult};
use super::{
    AccessGroup, GROUPS, MemberRef, MemberSource, SHOP_ORDERS, ShopOrder, email_key, window,
};
use crate::app::Hub;
use crate::config::Config;
use crate::identity::{Actor, User, new_token, token_key};
use crate::store::Tx;

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
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.shop_key_create", &group, detail)?;
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
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.shop_key_delete", &group, detail)?;
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
            shop_order(
                tx,
                (from, &hub.config),
                &group,
                order,
                (name, request.end_date),
            )
        })
        .await
        .inspect(|_| hub.mail_wake.notify_one())
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

/// The buyer's account: the one with the address — refused (409
/// `account_outside_tenant`) unless it lies wholly inside the group's node
/// (T4) — or a new member account. Returns it and whether it was made.
fn buyer(
    tx: &mut Tx,
    group: &AccessGroup,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(User, bool), AccessGroupError> {
    let accounts = Accounts::load(tx)?;
    if let Some(user) = accounts.by_email(email) {
        let (tree, _) = crate::tenancy::load_tree_in(tx)?;
        if !within_group_node(&tree, user, group) {
            return Err(AccessGroupError::conflict(
                "account_outside_tenant",
                "the address belongs to an account outside this group's node",
            ));
        }
        return Ok((user.clone(), false));
    }
    let user = accounts.new_member_user(group, email, None, (now, None))?;
    crate::identity::users::put_user(tx, &user)?;
    Ok((user, true))
}

/// Applies a new shop order: finds or makes the buyer's account, starts a
/// membership (a renewal for a current member), stores the order.
fn shop_order(
    tx: &mut Tx,
    (from, config): (&str, &Config),
    group: &AccessGroup,
    mut order: ShopOrder,
    (name, end_date): (Option<String>, Option<DateTime<Utc>>),
) -> Result<ShopResult, AccessGroupError> {
    let now = order.at;
    let (user, user_created) = buyer(tx, group, &order.email, now)?;
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
    if user_created {
        super::welcome::welcome_in(tx, config, group, &user, now)?;
    }
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
