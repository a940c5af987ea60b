//! CSV import of members (L7): email, name, end date per row, idempotent by
//! e-mail, with a report of what each row did.
//!
//! Owns: the row rules — a row is refused on its own (bad shape, address,
//! name or end date; the same address twice; an account outside the
//! actor's domain; a full group; a login name taken) while the others
//! apply — and the one transaction that stores every accepted row with its
//! audit entry. [`plan`] decides from what the transaction read, without
//! the store, so the rules are tested alone. Must not: parse CSV itself
//! ([`signet_common::members_csv`] does), nor know HTTP.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use signet_common::members_csv::{self, ImportRow as CsvRow};
use signet_common::permissions::{NodeTree, Role};

use super::checks;
use super::error::AccessGroupError;
use super::joining::Accounts;
use super::repo;
use super::service::{joined, sees_user};
use super::types::{ImportReport, ImportRow};
use super::{AccessGroup, MAX_MEMBERS, Member, MemberRef, MemberSource, email_key};
use crate::app::Hub;
use crate::identity::{Actor, MAX_NAME_LEN, User};
use crate::store::{StoreError, Tx};

/// One row that passed the checks and what it will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// A new user (maybe) and a new membership.
    Create(Option<User>, Member),
    /// A changed membership.
    Update(Member),
}

/// What the import's decisions rest on, as the transaction read it.
pub struct ImportContext<'a> {
    /// Who imports.
    pub actor: &'a Actor,
    /// The tenancy tree.
    pub tree: &'a NodeTree,
    /// The group.
    pub group: &'a AccessGroup,
    /// The accounts that exist.
    pub accounts: &'a Accounts,
    /// The group's member records (removed ones included) by member key.
    pub members: BTreeMap<String, Member>,
    /// When the import runs.
    pub now: DateTime<Utc>,
}

/// A refused row's report line.
fn refused(line: u64, email: &str, reason: String) -> ImportRow {
    ImportRow {
        row: line,
        email: email.chars().take(MAX_NAME_LEN).collect(),
        status: "refused",
        reason: Some(reason),
        user_id: None,
    }
}

/// The checks of a row on its own: its shape, address, name and end date.
fn row_shape(row: &CsvRow) -> Result<Option<DateTime<Utc>>, String> {
    row.shape.clone()?;
    checks::email(&row.email).map_err(|e| e.to_string())?;
    checks::display_name(row.name.as_deref()).map_err(|e| e.to_string())?;
    row.end_date.clone()
}

/// Decides every row (L7): the report, in file order, and the changes to
/// store. Rows are checked one by one; a refused row changes nothing.
#[must_use]
pub fn plan(context: &ImportContext<'_>, rows: Vec<CsvRow>) -> (Vec<ImportRow>, Vec<Planned>) {
    let by_email: HashMap<String, &User> = context
        .accounts
        .users
        .iter()
        .map(|u| (email_key(&u.email), u))
        .collect();
    let mut current = context.members.values().filter(|m| m.is_current()).count();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut report = Vec::with_capacity(rows.len());
    let mut planned = Vec::new();
    for row in rows {
        let (line, email) = (row.line, row.email.clone());
        let outcome = row_shape(&row).and_then(|end_date| {
            let key = email_key(&email);
            if let Some(first) = seen.get(&key) {
                return Err(format!("the same address as row {first}"));
            }
            seen.insert(key.clone(), line);
            plan_row(
                context,
                by_email.get(&key).copied(),
                (row, end_date),
                &mut current,
            )
        });
        match outcome {
            Ok((status, user_id, change)) => {
                planned.extend(change);
                report.push(ImportRow {
                    row: line,
                    email,
                    status,
                    reason: None,
                    user_id: Some(user_id),
                });
            }
            Err(reason) => report.push(refused(line, &email, reason)),
        }
    }
    (report, planned)
}

/// What one well-formed row does: updates the current membership of an
/// existing account, or makes a membership (and maybe an account).
fn plan_row(
    context: &ImportContext<'_>,
    user: Option<&User>,
    (row, end_date): (CsvRow, Option<DateTime<Utc>>),
    current: &mut usize,
) -> Result<(&'static str, signet_common::ids::UserId, Option<Planned>), String> {
    if let Some(user) = user
        && !sees_user(context.actor, context.tree, user)
    {
        return Err("the address belongs to an account outside your domain".into());
    }
    let existing = user.and_then(|u| context.members.get(&MemberRef::user(&u.id).key()));
    if let (Some(user), Some(member)) = (user, existing)
        && member.is_current()
    {
        checks::end_date(member.membership.joined_at, end_date).map_err(|e| e.to_string())?;
        let mut changed = member.clone();
        changed.membership.end_date = end_date;
        if row.name.is_some() {
            changed.display_name = row.name;
        }
        if &changed == member {
            return Ok(("unchanged", user.id.clone(), None));
        }
        return Ok(("updated", user.id.clone(), Some(Planned::Update(changed))));
    }
    checks::end_date(context.now, end_date).map_err(|e| e.to_string())?;
    if checks::check_room(*current).is_err() {
        return Err(format!("the group is full ({MAX_MEMBERS} members)"));
    }
    let (user_id, new_user) = match user {
        Some(user) => (user.id.clone(), None),
        None => {
            let made = (context.now, Some(context.actor.user.id.clone()));
            let user = context
                .accounts
                .new_member_user(context.group, &row.email, None, made)
                .map_err(|e| e.to_string())?;
            (user.id.clone(), Some(user))
        }
    };
    *current += 1;
    let source = MemberSource::Import {
        by: context.actor.user.id.clone(),
    };
    let who = MemberRef::user(&user_id);
    let member = joined(context.group, who, context.now, end_date, row.name, source);
    Ok(("created", user_id, Some(Planned::Create(new_user, member))))
}

/// Imports members from CSV (Manager+, L7) into group `id`: parses `csv`,
/// plans every row, and stores the accepted ones with one audit entry in
/// one transaction. Nothing is stored when no row changes anything.
///
/// # Errors
/// `RoleTooLow`, `Csv` (too large, bad header, too many rows), `NotFound`,
/// or the store's error.
pub async fn import_members(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    csv: &[u8],
) -> Result<ImportReport, AccessGroupError> {
    actor.require(Role::Manager)?;
    let records = members_csv::parse(csv)?;
    hub.store
        .transact(|tx| {
            let (group, tree) = repo::visible_group(tx, actor, id)?;
            let accounts = Accounts::load(tx)?;
            let members = repo::members(tx, &group.id)?
                .into_iter()
                .map(|m| (m.member.key(), m))
                .collect();
            let context = ImportContext {
                actor,
                tree: &tree,
                group: &group,
                accounts: &accounts,
                members,
                now: hub.now(),
            };
            let (rows, planned) = plan(&context, records.clone());
            let report = ImportReport::new(rows, !planned.is_empty());
            if !report.applied {
                return Ok(report);
            }
            store(tx, &planned)?;
            let now = hub.now();
            super::welcome::welcome_imported_in(tx, &hub.config, &group, &planned, &accounts, now)?;
            let detail = serde_json::json!({"rows": report.rows.len(), "created": report.created,
                "updated": report.updated, "unchanged": report.unchanged,
                "refused": report.refused});
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.import", &group, detail)?;
            Ok(report)
        })
        .await
        .inspect(|_| hub.mail_wake.notify_one())
}

/// Stores the planned changes: each new account and membership, each
/// changed membership.
fn store(tx: &mut Tx, planned: &[Planned]) -> Result<(), StoreError> {
    for change in planned {
        match change {
            Planned::Create(user, member) => {
                if let Some(user) = user {
                    crate::identity::users::put_user(tx, user)?;
                }
                repo::put_member(tx, member)?;
            }
            Planned::Update(member) => repo::put_member(tx, member)?,
        }
    }
    Ok(())
}

impl ImportReport {
    /// The report of `rows`, with the count of each status.
    #[must_use]
    pub fn new(rows: Vec<ImportRow>, applied: bool) -> Self {
        let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
        Self {
            applied,
            created: count("created"),
            updated: count("updated"),
            unchanged: count("unchanged"),
            refused: count("refused"),
            rows,
        }
    }
}
