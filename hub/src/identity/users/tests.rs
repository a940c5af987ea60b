//! The identity rules, without HTTP (S8, S13, T3).

use chrono::Utc;

use super::*;
use crate::identity::sessions::put_session;
use crate::identity::testing::{Fixture, fixture};
use crate::identity::{SESSIONS, Session};

fn user(name: &str, domain: &NodeId) -> User {
    User {
        id: UserId::new(new_id("u-")),
        name: login_name(name).unwrap(),
        email: "x@example.com".into(),
        role: Role::Viewer,
        domain: vec![domain.clone()],
        requires_approval: false,
        disabled: false,
        password_hash: String::new(),
        created_at: Utc::now(),
        created_by: None,
    }
}

async fn insert(f: &Fixture, user: &User) -> Result<(), IdentityError> {
    f.hub.store.transact(|tx| insert_user(tx, user)).await
}

async fn session(f: &Fixture, user: &UserId, key: &str) {
    let session = Session {
        user_id: user.clone(),
        created_at: Utc::now(),
        expires_at: Utc::now() + chrono::TimeDelta::hours(1),
        from: None,
    };
    f.hub
        .store
        .transact(|tx| put_session(tx, key, &session))
        .await
        .unwrap();
}

#[tokio::test]
async fn s13_a_new_login_name_is_neither_taken_nor_confusable() {
    let f = fixture().await;
    insert(&f, &user("josé", &f.root)).await.unwrap();
    let found = user_by_name(&f.hub.store, "JOSE\u{301}").unwrap().unwrap();
    assert_eq!(found.name, "josé");
    assert!(matches!(
        insert(&f, &user("jose\u{301}", &f.root)).await,
        Err(IdentityError::NameTaken(_))
    ));
    assert!(matches!(
        insert(&f, &user("ADMIN", &f.root)).await,
        Err(IdentityError::NameTaken(_))
    ));
    assert!(matches!(
        insert(&f, &user("adrnin", &f.root)).await,
        Err(IdentityError::Confusable(_))
    ));
    assert!(matches!(
        login_name("ad min"),
        Err(IdentityError::Invalid {
            code: "invalid_name",
            ..
        })
    ));
}

#[tokio::test]
async fn t3_managers_act_only_on_users_below_and_never_above_their_role() {
    let f = fixture().await;
    let a = f.node("n-a", &f.root).await;
    let b = f.node("n-b", &f.root).await;
    let manager = f.user("mia", Role::Manager, &[&a]).await;
    let inside = f.user("ida", Role::Viewer, &[&a]).await;
    let outside = f.user("otto", Role::Viewer, &[&b]).await;
    let ids: Vec<UserId> = list_users(&f.hub, &manager, None)
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(matches!(
        get_user(&f.hub, &manager, outside.user.id.as_str()),
        Err(IdentityError::NotFound)
    ));
    let promote = UpdateUser {
        role: Some(Role::Admin),
        ..UpdateUser::default()
    };
    assert!(matches!(
        update_user(&f.hub, &manager, inside.user.id.as_str(), promote).await,
        Err(IdentityError::Forbidden(
            "cannot grant a role above your own"
        ))
    ));
    let elsewhere = UpdateUser {
        domain: Some(vec![b.clone()]),
        ..UpdateUser::default()
    };
    assert!(matches!(
        update_user(&f.hub, &manager, inside.user.id.as_str(), elsewhere).await,
        Err(IdentityError::Invalid {
            code: "invalid_domain",
            ..
        })
    ));
    let own_role = UpdateUser {
        role: Some(Role::Viewer),
        ..UpdateUser::default()
    };
    assert!(matches!(
        update_user(&f.hub, &manager, manager.user.id.as_str(), own_role).await,
        Err(IdentityError::Forbidden(_))
    ));
    assert!(matches!(
        delete_user(&f.hub, &manager, manager.user.id.as_str()).await,
        Err(IdentityError::Forbidden("you cannot delete yourself"))
    ));
}

#[tokio::test]
async fn s8_disabling_or_deleting_a_user_revokes_their_sessions_at_once() {
    let f = fixture().await;
    let bob = f.user("bob", Role::Viewer, &[&f.root]).await;
    session(&f, &bob.user.id, "k1").await;
    session(&f, &bob.user.id, "k2").await;
    let disable = UpdateUser {
        disabled: Some(true),
        ..UpdateUser::default()
    };
    let disabled = update_user(&f.hub, &f.admin, bob.user.id.as_str(), disable)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert!(f.hub.store.scan_keys(SESSIONS, "").unwrap().is_empty());
    assert_eq!(f.hub.store.get::<Session>(SESSIONS, "k1").unwrap(), None);
    session(&f, &bob.user.id, "k3").await;
    delete_user(&f.hub, &f.admin, bob.user.id.as_str())
        .await
        .unwrap();
    assert_eq!(f.hub.store.get::<Session>(SESSIONS, "k3").unwrap(), None);
    assert_eq!(user_by_name(&f.hub.store, "bob").unwrap(), None);
}
