//! The permission-group rules, without HTTP (P2, P3, P4, P8, T4).

use signet_common::permissions::Role;

use super::*;
use crate::identity::testing::{Fixture, fixture};

fn request(node: &NodeId, name: &str, permissions: &[&str]) -> CreatePermissionGroup {
    CreatePermissionGroup {
        node: node.clone(),
        name: name.into(),
        email: None,
        description: None,
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

async fn group(f: &Fixture, name: &str, permissions: &[&str]) -> PermissionGroupId {
    create_group(&f.hub, &f.admin, request(&f.root, name, permissions))
        .await
        .unwrap()
        .id
}

fn code(e: &PermissionGroupError) -> Option<&'static str> {
    match e {
        PermissionGroupError::Invalid { code, .. }
        | PermissionGroupError::Conflict { code, .. } => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn p3_membership_is_transitive_and_a_cycle_is_refused() {
    let f = fixture().await;
    let publish = Permission::Publish.to_string();
    let top = group(&f, "Top", &[&publish]).await;
    let mid = group(&f, "Mid", &[]).await;
    let bob = f.user("bob", Role::Viewer, &[&f.root]).await;
    add_member(&f.hub, &f.admin, &mid, Member::User(bob.user.id.clone()))
        .await
        .unwrap();
    add_member(&f.hub, &f.admin, &top, Member::Group(mid.clone()))
        .await
        .unwrap();
    let view = user_permissions(&f.hub, &bob, bob.user.id.as_str()).unwrap();
    assert!(view.effective.contains(Permission::Publish));
    let via_top = view.groups.iter().find(|g| g.id == top).unwrap();
    assert!(!via_top.direct);
    assert!(view.groups.iter().any(|g| g.id == mid && g.direct));
    let refused = add_member(&f.hub, &f.admin, &mid, Member::Group(top.clone()))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("membership_cycle"));
    // Adding a member twice changes nothing.
    add_member(&f.hub, &f.admin, &top, Member::Group(mid.clone()))
        .await
        .unwrap();
    assert_eq!(members(&f.hub, &f.admin, &top).unwrap().groups.len(), 1);
}

#[tokio::test]
async fn p8_deleting_a_group_ends_its_grants_and_its_memberships() {
    let f = fixture().await;
    let publish = Permission::Publish.to_string();
    let top = group(&f, "Top", &[]).await;
    let grant = group(&f, "Grant", &[&publish]).await;
    let bob = f.user("bob", Role::Viewer, &[&f.root]).await;
    add_member(&f.hub, &f.admin, &grant, Member::User(bob.user.id.clone()))
        .await
        .unwrap();
    add_member(&f.hub, &f.admin, &top, Member::Group(grant.clone()))
        .await
        .unwrap();
    delete_group(&f.hub, &f.admin, &grant).await.unwrap();
    let view = user_permissions(&f.hub, &bob, bob.user.id.as_str()).unwrap();
    assert!(!view.effective.contains(Permission::Publish));
    assert!(members(&f.hub, &f.admin, &top).unwrap().groups.is_empty());
    assert!(matches!(
        remove_member(&f.hub, &f.admin, &top, Member::Group(grant)).await,
        Err(PermissionGroupError::NotFound("member"))
    ));
}

#[tokio::test]
async fn p2_names_are_unique_at_a_node_and_only_managers_change_groups() {
    let f = fixture().await;
    let first = group(&f, "Editors", &[]).await;
    let refused = create_group(&f.hub, &f.admin, request(&f.root, " editors ", &[]))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("name_taken"));
    let second = group(&f, "Writers", &[]).await;
    let rename = UpdatePermissionGroup {
        name: Some("EDITORS".into()),
        email: None,
        description: None,
        permissions: None,
    };
    let refused = update_group(&f.hub, &f.admin, &second, rename)
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("name_taken"));
    let refused = create_group(&f.hub, &f.admin, request(&f.root, "x", &["no_such"]))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("unknown_permission"));
    assert!(matches!(
        create_group(&f.hub, &f.admin, request(&f.root, "a\u{7}b", &[])).await,
        Err(PermissionGroupError::InvalidName(_))
    ));
    let viewer = f.user("vic", Role::Contributor, &[&f.root]).await;
    assert!(matches!(
        get_group(&f.hub, &viewer, &first),
        Err(PermissionGroupError::Forbidden(_))
    ));
}

#[tokio::test]
async fn t4_groups_and_users_outside_the_domain_are_not_found() {
    let f = fixture().await;
    let a = f.node("n-a", &f.root).await;
    let b = f.node("n-b", &f.root).await;
    let manager = f.user("mia", Role::Manager, &[&a]).await;
    let outsider = f.user("otto", Role::Viewer, &[&b]).await;
    let theirs = create_group(&f.hub, &f.admin, request(&b, "B", &[]))
        .await
        .unwrap()
        .id;
    let ours = create_group(&f.hub, &manager, request(&a, "A", &[]))
        .await
        .unwrap()
        .id;
    assert!(matches!(
        get_group(&f.hub, &manager, &theirs),
        Err(PermissionGroupError::NotFound("permission group"))
    ));
    assert!(matches!(
        create_group(&f.hub, &manager, request(&b, "x", &[])).await,
        Err(PermissionGroupError::NotFound("node"))
    ));
    assert!(matches!(
        add_member(
            &f.hub,
            &manager,
            &ours,
            Member::User(outsider.user.id.clone())
        )
        .await,
        Err(PermissionGroupError::NotFound("user"))
    ));
    assert!(matches!(
        add_member(&f.hub, &manager, &ours, Member::Group(theirs)).await,
        Err(PermissionGroupError::NotFound("permission group"))
    ));
    let listed = list_groups(&f.hub, &manager, None).unwrap();
    assert_eq!(listed.len(), 1);
}
