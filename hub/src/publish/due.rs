//! One pass of the publishing loop (U5, S3): due deferred and daily jobs,
//! re-signing manifests before they expire, pruning old run records.
//!
//! Owns: when a job runs and as whom (the user who scheduled it, if they
//! still may), a job's state after its run, run-record retention. Must
//! not: pace itself (that is [`super::runner`]).

use chrono::{DateTime, Utc};

use super::run::{Publishing, run_targets, send_run};
use super::sign::{Prepared, ToSend, prepare};
use super::targets::{Refused, Targets, authorize, targets_of};
use super::{
    Actor, JobSchedule, JobState, PRUNE_BATCH, PUBLICATION_JOBS, PUBLICATION_RUNS, PublicationJob,
    PublicationRun, PublishError, RUN_RETENTION, SIGNED_DOCUMENTS, SignedDocument, Trigger,
    put_job,
};
use crate::app::Hub;
use crate::audit::audit_id;
use crate::identity::{USERS, User};
use crate::store::{StoreError, Tx};
use crate::tenancy::load_tree_in;
use signet_common::envelope::DocumentKind;

/// What one [`run_due`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueReport {
    /// Job runs, successful or failed.
    pub jobs_run: usize,
    /// Of those, how many failed (their run records say why).
    pub jobs_failed: usize,
    /// Manifests re-signed because they neared expiry (S3).
    pub resigned: usize,
    /// Run records pruned.
    pub pruned: usize,
}

/// Runs every job due at `now` once, re-signs every manifest within the
/// re-sign window of its expiry (S3) and prunes old run records. The loop
/// calls it; tests call it with a manual clock. A job publishes as the user
/// who scheduled it, if that user still holds `publish` and the scope is
/// still inside their domain; otherwise its run fails and says why. A
/// deferred job runs once; a daily job then waits for its next local time
/// (days missed while the hub was down are not caught up).
///
/// # Errors
/// When the store fails (a job's own failure is recorded, not returned).
pub async fn run_due(state: &Hub, now: DateTime<Utc>) -> Result<DueReport, PublishError> {
    let mut report = DueReport::default();
    let jobs: Vec<PublicationJob> = state.store.scan(PUBLICATION_JOBS, "")?;
    for job in jobs {
        if is_due(&job, now) {
            report.jobs_run += 1;
            if !run_job(state, &job.id, now).await? {
                report.jobs_failed += 1;
            }
        }
    }
    report.resigned = super::rekey::resign_other_keys(state).await?;
    report.resigned += resign_expiring(state, now).await?;
    report.pruned = prune_runs(state, now).await?;
    Ok(report)
}

/// The earliest time a pending job is due, if any: the loop sleeps until
/// then (or until woken), so a job starts within moments of its time.
///
/// # Errors
/// When the store fails.
pub fn next_due(state: &Hub) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(state
        .store
        .scan::<PublicationJob>(PUBLICATION_JOBS, "")?
        .into_iter()
        .filter(|job| job.state == JobState::Pending)
        .filter_map(|job| job.next_run)
        .min())
}

fn is_due(job: &PublicationJob, now: DateTime<Utc>) -> bool {
    job.state == JobState::Pending && job.next_run.is_some_and(|t| t <= now)
}

/// Runs one due job; `Ok(false)` when its run failed (recorded). The job
/// is read again inside the run's transaction: another pass or a cancel
/// may have got there first.
async fn run_job(state: &Hub, id: &str, now: DateTime<Utc>) -> Result<bool, PublishError> {
    let started = std::time::Instant::now();
    let sent = state
        .store
        .transact(|tx| {
            let Some(job) = tx.get::<PublicationJob>(PUBLICATION_JOBS, id)? else {
                return Ok(None);
            };
            if !is_due(&job, now) {
                return Ok(None);
            }
            run_job_in(state, tx, job, now).map(Some)
        })
        .await?;
    let Some(ToSend {
        run,
        signed,
        assigned,
    }) = sent
    else {
        return Ok(true);
    };
    // Broker ACLs follow the new assignments (S7); failures are logged.
    send_run(state, started, assigned, signed).await;
    Ok(run.error.is_none())
}

/// Inside `tx`: runs `job` as the user who scheduled it, records its
/// outcome in the job, the run record and the audit log, and returns what
/// is sent after the commit. A failure other than the store's is the
/// run's outcome, not an error.
fn run_job_in(
    state: &Hub,
    tx: &mut Tx,
    mut job: PublicationJob,
    now: DateTime<Utc>,
) -> Result<ToSend, PublishError> {
    let trigger = match job.schedule {
        JobSchedule::At { .. } => Trigger::Deferred {
            job: job.id.clone(),
        },
        JobSchedule::Daily { .. } => Trigger::Daily {
            job: job.id.clone(),
        },
    };
    let actor = Actor {
        user: Some(job.created_by.clone()),
        name: Some(job.created_by_name.clone()),
        from: "scheduler".to_owned(),
    };
    let scope = Some(job.scope.clone());
    let outcome = job_targets(state, tx, &job).and_then(|targets| {
        prepare(
            state,
            tx,
            &targets,
            scope,
            actor.clone(),
            trigger.clone(),
            now,
        )
    });
    job.runs = job.runs.saturating_add(1);
    job.next_run = job.schedule.next_after(now);
    let once = matches!(job.schedule, JobSchedule::At { .. });
    let prepared = match outcome {
        Ok(prepared) => {
            job.last_error = None;
            if once {
                job.state = JobState::Done;
            }
            prepared
        }
        Err(PublishError::Store(e)) => return Err(PublishError::Store(e)),
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(job = %job.id, %reason, "publication job failed");
            job.last_error = Some(reason.clone());
            if once {
                job.state = JobState::Failed;
            }
            let run = PublicationRun {
                id: audit_id(now),
                at: now,
                actor,
                trigger,
                scope: Some(job.scope.clone()),
                scope_node: job.scope_node.clone(),
                documents: Vec::new(),
                dropped_items: Vec::new(),
                error: Some(reason),
            };
            Prepared::nothing_signed(run)
        }
    };
    if job.state == JobState::Pending && job.next_run.is_none() {
        job.state = JobState::Failed;
        job.last_error = Some("no next run time within the calendar".to_owned());
    }
    job.last_run = Some(prepared.run.id.clone());
    put_job(tx, &job)?;
    Ok(prepared.write(tx)?)
}

/// A job's targets, if its creator may still publish its scope (read in
/// the run's transaction).
fn job_targets(state: &Hub, tx: &mut Tx, job: &PublicationJob) -> Result<Targets, PublishError> {
    let (tree, nodes) = load_tree_in(tx)?;
    let targets = targets_of(tx, &tree, &nodes, &job.scope)?;
    let refused = |why: &str| PublishError::NotAuthorized(why.to_owned());
    let Some(user) = tx.get::<User>(USERS, job.created_by.as_str())? else {
        return Err(refused("the user who scheduled it no longer exists"));
    };
    match authorize(&state.store, &user, &tree, &targets.scope_node)? {
        Ok(()) => Ok(targets),
        Err(Refused::NoPermission) => Err(refused(
            "the user who scheduled it no longer holds the publish permission",
        )),
        Err(Refused::OutsideDomain) => Err(refused(
            "the scope is no longer inside the domain of the user who scheduled it",
        )),
    }
}

/// Re-signs every stored manifest within the re-sign window of its expiry
/// whose group still exists; returns how many.
async fn resign_expiring(state: &Hub, now: DateTime<Utc>) -> Result<usize, PublishError> {
    let window = state.config.manifest_resign_before();
    let due: Vec<SignedDocument> = state
        .store
        .scan::<SignedDocument>(
            SIGNED_DOCUMENTS,
            &format!("{}/", DocumentKind::GroupManifest.as_str()),
        )?
        .into_iter()
        .filter(|d| d.expires_at.is_some_and(|e| e - window <= now))
        .collect();
    let mut resigned = 0;
    for document in due {
        let Some(group) = document.group else {
            continue;
        };
        let Some(scope_node) = crate::schedules::node_of_group(&state.store, &group)? else {
            continue;
        };
        let targets = Targets {
            scope_node,
            groups: vec![group.clone()],
            devices: Vec::new(),
            followers: Vec::new(),
        };
        let by = Publishing {
            trigger: Trigger::Resign,
            ..Publishing::from(Actor::hub())
        };
        match run_targets(state, |_| Ok(targets.clone()), None, by).await {
            Ok(_) => resigned += 1,
            Err(PublishError::Store(e)) => return Err(PublishError::Store(e)),
            Err(e) => tracing::error!(group = %group, error = %e, "re-signing a manifest failed"),
        }
    }
    Ok(resigned)
}

/// Deletes run records older than [`RUN_RETENTION`] with their targets'
/// progress records, at most [`PRUNE_BATCH`] runs per pass. Which records are old needs no check: a key
/// older than the cutoff stays older.
async fn prune_runs(state: &Hub, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = audit_id(now - RUN_RETENTION);
    // Keys are time-ordered: the oldest come first.
    let old: Vec<String> = state
        .store
        .scan_keys(PUBLICATION_RUNS, "")?
        .into_iter()
        .take_while(|key| key.as_str() < cutoff.as_str())
        .take(PRUNE_BATCH)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    state
        .store
        .transact(|tx| {
            for key in &old {
                tx.delete(PUBLICATION_RUNS, key);
                super::publications::forget_in(tx, key)?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(old.len())
}
