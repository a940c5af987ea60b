//! Service tests for the publishing rules reachable only over HTTP before
//! (U5, P7, T4): deferred and daily jobs, cancelling, the time checks and
//! the domain of an immediate publication.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use signet_common::ids::NodeId;

use super::service::{self, PublicationError, PublishRequest, Requested};
use super::{JobState, PUBLICATION_JOBS, PUBLICATION_RUNS, PublicationJob, PublicationRun};
use super::{PublishError, Trigger, When, run_due};
use crate::app::{Hub, SystemClock};
use crate::config::Config;
use crate::groups::GroupRef;
use crate::identity::{Actor, USERS, User};

/// A hub on a fresh data directory (kept alive by the returned guard), its
/// admin as an actor and its root node.
pub(crate) async fn test_hub() -> (tempfile::TempDir, Hub, Actor, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = crate::init::init(&data, Utc::now()).await.unwrap();
    let config = Config {
        data,
        ..Config::default()
    };
    let mut hub = crate::serve::open(config, Arc::new(SystemClock)).unwrap();
    hub.publisher = Arc::new(super::RecordingPublisher::new());
    let admin = hub
        .store
        .scan::<User>(USERS, "")
        .unwrap()
        .into_iter()
        .find(|u| u.name == "admin")
        .unwrap();
    let actor = Actor {
        user: admin,
        from: "test".to_owned(),
    };
    (dir, hub, actor, made.root_node)
}

async fn schedule(hub: &Hub, actor: &Actor, root: &NodeId, when: When) -> PublicationJob {
    let request = PublishRequest {
        scope: GroupRef::Node(root.clone()),
        when,
    };
    match service::request(hub, actor, request).await.unwrap() {
        Requested::Scheduled(job) => job,
        Requested::Published(_) => panic!("published at once"),
    }
}

fn job(hub: &Hub, id: &str) -> PublicationJob {
    hub.store.get(PUBLICATION_JOBS, id).unwrap().unwrap()
}

#[tokio::test]
async fn u5_a_deferred_job_runs_once_at_its_time() {
    let (_dir, hub, actor, root) = test_hub().await;
    let at = hub.now() + TimeDelta::hours(1);
    let pending = schedule(&hub, &actor, &root, When::At { at }).await;
    assert_eq!(pending.state, JobState::Pending);
    assert_eq!(pending.next_run, Some(at));

    let early = run_due(&hub, at - TimeDelta::minutes(1)).await.unwrap();
    assert_eq!(early.jobs_run, 0);
    let due = run_due(&hub, at).await.unwrap();
    assert_eq!((due.jobs_run, due.jobs_failed), (1, 0));
    let done = job(&hub, &pending.id);
    assert_eq!(
        (done.state, done.runs, done.next_run),
        (JobState::Done, 1, None)
    );
    let run: PublicationRun = hub
        .store
        .get(PUBLICATION_RUNS, done.last_run.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        run.trigger,
        Trigger::Deferred {
            job: done.id.clone()
        }
    );
    assert_eq!(run.actor.user, Some(actor.user.id.clone()));
    assert!(run.documents.iter().any(|d| d.signed));

    let again = run_due(&hub, at + TimeDelta::days(1)).await.unwrap();
    assert_eq!(again.jobs_run, 0, "a deferred job runs once");
}

#[tokio::test]
async fn u5_a_daily_job_stays_pending_for_its_next_local_time() {
    let (_dir, hub, actor, root) = test_hub().await;
    let when = When::Daily {
        time: "06:00".to_owned(),
        time_zone: "Europe/Berlin".to_owned(),
    };
    let pending = schedule(&hub, &actor, &root, when).await;
    let first = pending.next_run.unwrap();
    assert!(first > hub.now() && first - hub.now() <= TimeDelta::days(1));

    let due = run_due(&hub, first).await.unwrap();
    assert_eq!((due.jobs_run, due.jobs_failed), (1, 0));
    let after = job(&hub, &pending.id);
    assert_eq!((after.state, after.runs), (JobState::Pending, 1));
    let next = after.next_run.unwrap();
    assert!(next > first && next - first <= TimeDelta::hours(25));
}

#[tokio::test]
async fn u5_a_cancelled_job_never_runs_and_is_cancelled_once() {
    let (_dir, hub, actor, root) = test_hub().await;
    let at = hub.now() + TimeDelta::hours(1);
    let pending = schedule(&hub, &actor, &root, When::At { at }).await;
    let cancelled = service::cancel(&hub, &actor, &pending.id).await.unwrap();
    assert_eq!(
        (cancelled.state, cancelled.next_run),
        (JobState::Cancelled, None)
    );
    assert!(matches!(
        service::cancel(&hub, &actor, &pending.id).await,
        Err(PublicationError::NotPending(JobState::Cancelled))
    ));
    assert_eq!(run_due(&hub, at).await.unwrap().jobs_run, 0);
    assert!(matches!(
        service::cancel(&hub, &actor, "pj-none").await,
        Err(PublicationError::NotFound("publication job"))
    ));
}

#[tokio::test]
async fn u5_a_time_in_the_past_or_a_bad_zone_is_refused() {
    let (_dir, hub, actor, root) = test_hub().await;
    for when in [
        When::At {
            at: hub.now() - TimeDelta::seconds(1),
        },
        When::Daily {
            time: "6:00".to_owned(),
            time_zone: "UTC".to_owned(),
        },
        When::Daily {
            time: "06:00".to_owned(),
            time_zone: "Mars/Olympus".to_owned(),
        },
    ] {
        let request = PublishRequest {
            scope: GroupRef::Node(root.clone()),
            when,
        };
        assert!(matches!(
            service::request(&hub, &actor, request).await,
            Err(PublicationError::InvalidWhen(_))
        ));
    }
    let jobs: Vec<PublicationJob> = hub.store.scan(PUBLICATION_JOBS, "").unwrap();
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn p7_a_job_whose_creator_lost_publish_fails_and_says_why() {
    let (_dir, hub, actor, root) = test_hub().await;
    let at = hub.now() + TimeDelta::hours(1);
    let pending = schedule(&hub, &actor, &root, When::At { at }).await;
    let disabled = User {
        disabled: true,
        ..actor.user.clone()
    };
    hub.store
        .transact(|tx| tx.put(USERS, disabled.id.as_str(), &disabled))
        .await
        .unwrap();
    let due = run_due(&hub, at).await.unwrap();
    assert_eq!((due.jobs_run, due.jobs_failed), (1, 1));
    let failed = job(&hub, &pending.id);
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.last_error.unwrap().contains("publish permission"));
}

#[tokio::test]
async fn t4_p7_publishing_outside_the_domain_or_without_permission_is_refused() {
    let (_dir, hub, actor, root) = test_hub().await;
    let elsewhere = Actor {
        user: User {
            domain: vec![NodeId::new("n-elsewhere")],
            ..actor.user.clone()
        },
        ..actor.clone()
    };
    for when in [
        When::Immediate,
        When::At {
            at: hub.now() + TimeDelta::hours(1),
        },
    ] {
        let request = PublishRequest {
            scope: GroupRef::Node(root.clone()),
            when,
        };
        let refused = service::request(&hub, &elsewhere, request).await;
        assert!(
            matches!(
                refused,
                Err(PublicationError::NotFound("scope")
                    | PublicationError::Run(PublishError::UnknownGroup(_)))
            ),
            "{refused:?}"
        );
    }
    let runs: Vec<PublicationRun> = hub.store.scan(PUBLICATION_RUNS, "").unwrap();
    assert!(runs.is_empty(), "nothing was published");

    let disabled = Actor {
        user: User {
            disabled: true,
            ..actor.user.clone()
        },
        ..actor
    };
    let request = PublishRequest {
        scope: GroupRef::Node(root),
        when: When::Immediate,
    };
    assert!(matches!(
        service::request(&hub, &disabled, request).await,
        Err(PublicationError::NoPermission)
    ));
}
