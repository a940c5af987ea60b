//! Roles, permission groups, tenancy and media access (T1–T4, P1–P9).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;

use proptest::prelude::*;
use signet_common::ids::{AccessGroupId, NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{
    Access, Denial, Domain, GroupDetails, MediaAccess, NodeTree, Permission, PermissionError,
    PermissionGroups, PermissionSet, Principal, PublishSettings, Role, can, effective_permissions,
    permission_access, role_defaults, view, view_access,
};

fn gid(id: &str) -> PermissionGroupId {
    PermissionGroupId::new(id)
}

fn uid(id: &str) -> UserId {
    UserId::new(id)
}

fn nid(id: &str) -> NodeId {
    NodeId::new(id)
}

fn graph_with(groups: &[(&str, &[Permission])]) -> PermissionGroups {
    let mut graph = PermissionGroups::new();
    for (id, permissions) in groups {
        graph
            .create_group(
                gid(id),
                GroupDetails::named(*id),
                PermissionSet::of(permissions),
            )
            .unwrap();
    }
    graph
}

/// root → {acme → {acme-north → acme-store-1}, globex → globex-hq}
fn tree() -> NodeTree {
    let mut tree = NodeTree::new(nid("root"));
    tree.add_node(nid("acme"), &nid("root")).unwrap();
    tree.add_node(nid("acme-north"), &nid("acme")).unwrap();
    tree.add_node(nid("acme-store-1"), &nid("acme-north"))
        .unwrap();
    tree.add_node(nid("globex"), &nid("root")).unwrap();
    tree.add_node(nid("globex-hq"), &nid("globex")).unwrap();
    tree
}

fn open_media(node: &str, owner: &str) -> MediaAccess {
    MediaAccess {
        node: nid(node),
        owner: uid(owner),
        open_to_all: true,
        allowed_groups: BTreeSet::new(),
        access_groups: BTreeSet::new(),
        publish: PublishSettings {
            allow_download: true,
            allow_share: true,
            allow_comments: true,
            allow_rating: true,
        },
    }
}

fn principal(user: &str, role: Role, domain: &[&str], graph: &PermissionGroups) -> Principal {
    Principal::resolve(
        uid(user),
        role,
        Domain::new(domain.iter().map(|node| nid(node))),
        graph,
        BTreeSet::new(),
    )
}

// ---- P7 catalogue -------------------------------------------------------

#[test]
fn p7_catalogue_names_round_trip() {
    let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "download",
            "rate",
            "feedback",
            "favorite",
            "share",
            "update_custom_attributes",
            "process_media",
            "annotation.view_own",
            "annotation.view_all",
            "annotation.edit_own",
            "annotation.edit_others",
            "annotation.delete_own",
            "annotation.delete_others",
            "comment.view",
            "comment.add",
            "comment.edit_own",
            "comment.delete_own",
            "comment.delete_others",
            "learning_plans",
            "private_playlists",
            "private_collections",
            "approve_content",
            "publish",
            "manage_devices",
        ]
    );
    for permission in Permission::ALL {
        assert_eq!(permission.as_str().parse::<Permission>(), Ok(permission));
        let json = serde_json::to_string(&permission).unwrap();
        assert_eq!(json, format!("\"{}\"", permission.as_str()));
        assert_eq!(
            serde_json::from_str::<Permission>(&json).unwrap(),
            permission
        );
    }
    assert_eq!(
        "comment.like".parse::<Permission>(),
        Err(PermissionError::UnknownPermission {
            name: "comment.like".into()
        })
    );
}

#[test]
fn p7_permission_set_serializes_as_names_in_catalogue_order() {
    let set = PermissionSet::of(&[Permission::Publish, Permission::Download]);
    assert_eq!(
        serde_json::to_string(&set).unwrap(),
        r#"["download","publish"]"#
    );
    let back: PermissionSet = serde_json::from_str(r#"["publish","download","publish"]"#).unwrap();
    assert_eq!(back, set);
    assert!(serde_json::from_str::<PermissionSet>(r#"["fly"]"#).is_err());
    assert_eq!(PermissionSet::all().len(), 24);
    assert_eq!(PermissionSet::all().iter().count(), 24);
}

#[test]
fn p5_m2_publish_gated_permissions_are_share_download_comments_and_rate() {
    let gated: Vec<Permission> = Permission::ALL
        .into_iter()
        .filter(|p| p.publish_gate().is_some())
        .collect();
    assert_eq!(
        gated,
        [
            Permission::Download,
            Permission::Rate,
            Permission::Share,
            Permission::CommentView,
            Permission::CommentAdd,
            Permission::CommentEditOwn,
            Permission::CommentDeleteOwn,
            Permission::CommentDeleteOthers,
        ]
    );
}

// ---- P1, P2 role defaults ----------------------------------------------

#[test]
fn p1_each_role_includes_every_lower_role() {
    for pair in Role::ALL.windows(2) {
        let (lower, higher) = (pair[0], pair[1]);
        assert!(lower < higher);
        assert!(role_defaults(higher).is_superset(role_defaults(lower)));
        if higher <= Role::Manager {
            assert_ne!(role_defaults(higher), role_defaults(lower));
        }
    }
    // Manager already holds the whole P7 catalogue; what sets Admin apart
    // (users, nodes, tenants) lies outside it.
    assert_eq!(role_defaults(Role::Manager), PermissionSet::all());
    assert_eq!(role_defaults(Role::Admin), PermissionSet::all());
}

#[test]
fn p2_moderator_and_above_hold_every_media_permission() {
    for role in [Role::Moderator, Role::Manager, Role::Admin] {
        for permission in Permission::ALL
            .into_iter()
            .filter(|p| p.is_media_permission())
        {
            assert!(
                role_defaults(role).contains(permission),
                "{role:?} {permission}"
            );
        }
        assert!(role_defaults(role).contains(Permission::ApproveContent));
        assert!(role_defaults(role).contains(Permission::Publish));
    }
    assert!(!role_defaults(Role::Contributor).contains(Permission::AnnotationViewAll));
    assert!(!role_defaults(Role::Moderator).contains(Permission::ManageDevices));
    assert!(role_defaults(Role::Manager).contains(Permission::ManageDevices));
}

#[test]
fn p2_only_manager_and_above_manage_permission_groups_and_p9_contributor_uploads() {
    let manage: Vec<bool> = Role::ALL
        .iter()
        .map(|r| r.can_manage_permission_groups())
        .collect();
    assert_eq!(manage, [false, false, false, true, true]);
    let upload: Vec<bool> = Role::ALL.iter().map(|r| r.can_upload()).collect();
    assert_eq!(upload, [false, true, true, true, true]);
}

// ---- P4 ----------------------------------------------------------------

#[test]
fn p4_truth_table() {
    // (role allows, group allows, granted)
    let rows = [
        (true, true, true),
        (true, false, true),
        (false, true, true),
        (false, false, false),
    ];
    let permission = Permission::Download; // a Contributor default, not a Viewer one
    for (role_allows, group_allows, granted) in rows {
        let role = if role_allows {
            Role::Contributor
        } else {
            Role::Viewer
        };
        assert_eq!(role_defaults(role).contains(permission), role_allows);
        let group_permissions: &[Permission] = if group_allows {
            &[permission]
        } else {
            &[Permission::Rate]
        };
        let mut graph = graph_with(&[("g", group_permissions)]);
        graph.add_member_user(&gid("g"), uid("u")).unwrap();
        let effective = effective_permissions(role, &graph.groups_of(&uid("u")), &graph);
        assert_eq!(
            effective.contains(permission),
            granted,
            "role allows {role_allows}, group allows {group_allows}"
        );
    }
}

#[test]
fn p4_union_over_several_groups() {
    let mut graph = graph_with(&[
        ("a", &[Permission::Download]),
        ("b", &[Permission::LearningPlans]),
    ]);
    graph.add_member_user(&gid("a"), uid("u")).unwrap();
    graph.add_member_user(&gid("b"), uid("u")).unwrap();
    let effective = effective_permissions(Role::Viewer, &graph.groups_of(&uid("u")), &graph);
    assert_eq!(
        effective,
        role_defaults(Role::Viewer).union(PermissionSet::of(&[
            Permission::Download,
            Permission::LearningPlans
        ]))
    );
}

// ---- P3 transitive groups and cycles -----------------------------------

#[test]
fn p3_membership_is_transitive_through_four_levels() {
    let mut graph = graph_with(&[
        ("a", &[Permission::Publish]),
        ("b", &[]),
        ("c", &[]),
        ("d", &[]),
        ("other", &[Permission::ManageDevices]),
    ]);
    graph.add_member_group(&gid("a"), &gid("b")).unwrap();
    graph.add_member_group(&gid("b"), &gid("c")).unwrap();
    graph.add_member_group(&gid("c"), &gid("d")).unwrap();
    graph.add_member_user(&gid("d"), uid("u")).unwrap();
    assert_eq!(
        graph.groups_of(&uid("u")),
        BTreeSet::from([gid("a"), gid("b"), gid("c"), gid("d")])
    );
    assert!(graph.is_member(&uid("u"), &gid("a")).unwrap());
    assert!(!graph.is_member(&uid("u"), &gid("other")).unwrap());
    assert_eq!(
        graph.members_of(&gid("a")).unwrap(),
        BTreeSet::from([uid("u")])
    );
    let effective = effective_permissions(Role::Viewer, &graph.groups_of(&uid("u")), &graph);
    assert!(effective.contains(Permission::Publish));
    assert!(!effective.contains(Permission::ManageDevices));
    // A diamond is not a cycle: d is reachable from a through b and through another path.
    graph.add_member_group(&gid("a"), &gid("d")).unwrap();
    assert_eq!(graph.groups_of(&uid("u")).len(), 4);
}

#[test]
fn p3_cycles_are_refused_and_change_nothing() {
    let mut graph = graph_with(&[("a", &[]), ("b", &[]), ("c", &[])]);
    graph.add_member_group(&gid("a"), &gid("b")).unwrap();
    graph.add_member_group(&gid("b"), &gid("c")).unwrap();
    let before = graph.clone();
    // self
    assert_eq!(
        graph.add_member_group(&gid("a"), &gid("a")),
        Err(PermissionError::Cycle {
            parent: gid("a"),
            child: gid("a")
        })
    );
    // direct: b is in a, so a cannot join b
    assert_eq!(
        graph.add_member_group(&gid("b"), &gid("a")),
        Err(PermissionError::Cycle {
            parent: gid("b"),
            child: gid("a")
        })
    );
    // indirect: c is in b is in a, so a cannot join c
    assert_eq!(
        graph.add_member_group(&gid("c"), &gid("a")),
        Err(PermissionError::Cycle {
            parent: gid("c"),
            child: gid("a")
        })
    );
    assert_eq!(graph, before);
}

#[test]
fn p3_unknown_ids_are_errors() {
    let mut graph = graph_with(&[("a", &[])]);
    let before = graph.clone();
    let unknown = Err(PermissionError::UnknownGroup { group: gid("zz") });
    assert_eq!(graph.add_member_group(&gid("a"), &gid("zz")), unknown);
    assert_eq!(graph.add_member_group(&gid("zz"), &gid("a")), unknown);
    assert_eq!(graph.add_member_user(&gid("zz"), uid("u")), unknown);
    assert_eq!(graph.remove_member_user(&gid("zz"), &uid("u")), unknown);
    assert_eq!(graph.is_member(&uid("u"), &gid("zz")), unknown);
    assert!(graph.delete_group(&gid("zz")).is_err());
    assert_eq!(graph, before);
    assert!(graph.groups_of(&uid("nobody")).is_empty());
    assert_eq!(
        graph.create_group(
            gid("a"),
            GroupDetails::named("again"),
            PermissionSet::empty()
        ),
        Err(PermissionError::DuplicateGroup { group: gid("a") })
    );
}

#[test]
fn p3_stored_graph_with_a_cycle_or_dangling_member_is_refused() {
    let cyclic = r#"{"groups":{
        "a":{"details":{"name":"a","email":null,"description":null},"permissions":[],"member_users":[],"member_groups":["b"]},
        "b":{"details":{"name":"b","email":null,"description":null},"permissions":[],"member_users":[],"member_groups":["a"]}}}"#;
    assert!(serde_json::from_str::<PermissionGroups>(cyclic).is_err());
    let dangling = r#"{"groups":{
        "a":{"details":{"name":"a","email":null,"description":null},"permissions":[],"member_users":[],"member_groups":["ghost"]}}}"#;
    assert!(serde_json::from_str::<PermissionGroups>(dangling).is_err());
    let mut graph = graph_with(&[("a", &[Permission::Rate]), ("b", &[])]);
    graph.add_member_group(&gid("a"), &gid("b")).unwrap();
    graph.add_member_user(&gid("b"), uid("u")).unwrap();
    let json = serde_json::to_string(&graph).unwrap();
    assert_eq!(
        serde_json::from_str::<PermissionGroups>(&json).unwrap(),
        graph
    );
}

// ---- P8 ----------------------------------------------------------------

#[test]
fn p8_deleting_a_group_removes_its_grants_at_once() {
    let mut graph = graph_with(&[("parent", &[Permission::Publish]), ("child", &[])]);
    graph
        .add_member_group(&gid("parent"), &gid("child"))
        .unwrap();
    graph.add_member_user(&gid("child"), uid("u")).unwrap();
    let stale_groups = graph.groups_of(&uid("u"));
    assert!(
        effective_permissions(Role::Viewer, &stale_groups, &graph).contains(Permission::Publish)
    );

    graph.delete_group(&gid("parent")).unwrap();
    // Even a caller holding the old group list gets nothing from the deleted group.
    assert!(
        !effective_permissions(Role::Viewer, &stale_groups, &graph).contains(Permission::Publish)
    );
    assert_eq!(graph.groups_of(&uid("u")), BTreeSet::from([gid("child")]));

    // Deleting a child drops it from its parents' member lists.
    let mut graph = graph_with(&[("parent", &[]), ("child", &[])]);
    graph
        .add_member_group(&gid("parent"), &gid("child"))
        .unwrap();
    graph.delete_group(&gid("child")).unwrap();
    assert!(
        graph
            .group(&gid("parent"))
            .unwrap()
            .member_groups
            .is_empty()
    );
    // and re-creating a group with that id does not bring the old membership back
    graph
        .create_group(
            gid("child"),
            GroupDetails::named("child"),
            PermissionSet::empty(),
        )
        .unwrap();
    graph.add_member_user(&gid("child"), uid("u")).unwrap();
    assert_eq!(graph.groups_of(&uid("u")), BTreeSet::from([gid("child")]));
}

#[test]
fn p8_groups_are_edited_and_filtered_by_name_and_email() {
    let mut graph = PermissionGroups::new();
    graph
        .create_group(
            gid("1"),
            GroupDetails {
                name: "Store Managers".into(),
                email: Some("stores@acme.example".into()),
                description: None,
            },
            PermissionSet::empty(),
        )
        .unwrap();
    graph
        .create_group(
            gid("2"),
            GroupDetails::named("Marketing"),
            PermissionSet::empty(),
        )
        .unwrap();
    let found = |text: &str| -> Vec<String> {
        graph
            .filter(text)
            .map(|(id, _)| id.as_str().to_owned())
            .collect()
    };
    assert_eq!(found("store"), ["1"]);
    assert_eq!(found("ACME.EXAMPLE"), ["1"]);
    assert_eq!(found("market"), ["2"]);
    assert_eq!(found(""), ["1", "2"]);
    assert!(found("nothing").is_empty());

    graph.add_member_user(&gid("2"), uid("u")).unwrap();
    graph
        .edit_group(
            &gid("2"),
            GroupDetails::named("Brand"),
            PermissionSet::of(&[Permission::Share]),
        )
        .unwrap();
    let group = graph.group(&gid("2")).unwrap();
    assert_eq!(group.details.name, "Brand");
    assert!(group.member_users.contains(&uid("u")));
    assert_eq!(
        graph.edit_group(&gid("2"), GroupDetails::named("  "), PermissionSet::empty()),
        Err(PermissionError::EmptyGroupName)
    );
    assert_eq!(
        graph.create_group(
            gid("3"),
            GroupDetails::named("x".repeat(129)),
            PermissionSet::empty()
        ),
        Err(PermissionError::FieldTooLong {
            field: "name",
            max: 128
        })
    );
}

// ---- Monotonicity (proptest) -------------------------------------------

const GROUPS: usize = 6;
const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    AddUser(usize, usize),
    AddGroup(usize, usize),
    Grant(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..GROUPS, 0..USERS).prop_map(|(g, u)| Op::AddUser(g, u)),
        (0..GROUPS, 0..GROUPS).prop_map(|(p, c)| Op::AddGroup(p, c)),
        (0..GROUPS, 0..Permission::ALL.len()).prop_map(|(g, p)| Op::Grant(g, p)),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

/// Applies `op`; refusals (cycles) are fine and must change nothing.
fn apply(graph: &mut PermissionGroups, op: &Op) {
    let g = |i: usize| gid(&format!("g{i}"));
    match *op {
        Op::AddUser(group, user) => {
            graph
                .add_member_user(&g(group), uid(&format!("u{user}")))
                .unwrap();
        }
        Op::AddGroup(parent, child) => {
            let before = graph.clone();
            if graph.add_member_group(&g(parent), &g(child)).is_err() {
                assert_eq!(*graph, before);
            }
        }
        Op::Grant(group, permission) => {
            let current = graph.group(&g(group)).unwrap();
            let mut permissions = current.permissions;
            permissions.insert(Permission::ALL[permission]);
            let details = current.details.clone();
            graph.edit_group(&g(group), details, permissions).unwrap();
        }
    }
}

fn build(ops: &[Op]) -> PermissionGroups {
    let mut graph = PermissionGroups::new();
    for i in 0..GROUPS {
        graph
            .create_group(
                gid(&format!("g{i}")),
                GroupDetails::named(format!("g{i}")),
                PermissionSet::empty(),
            )
            .unwrap();
    }
    for op in ops {
        apply(&mut graph, op);
    }
    graph
}

proptest! {
    #[test]
    fn p4_effective_permissions_are_monotone_and_keep_role_defaults(
        ops in prop::collection::vec(op(), 0..40),
        extra in op(),
        role in role(),
        user in 0..USERS,
    ) {
        let user = uid(&format!("u{user}"));
        let mut graph = build(&ops);
        let before = effective_permissions(role, &graph.groups_of(&user), &graph);
        prop_assert!(before.is_superset(role_defaults(role)));
        apply(&mut graph, &extra);
        let after = effective_permissions(role, &graph.groups_of(&user), &graph);
        prop_assert!(after.is_superset(before));
        prop_assert!(after.is_superset(role_defaults(role)));
    }

    #[test]
    fn p3_random_graphs_stay_acyclic_and_membership_is_transitive(
        ops in prop::collection::vec(op(), 0..60),
        user in 0..USERS,
    ) {
        let graph = build(&ops);
        let user = uid(&format!("u{user}"));
        let groups = graph.groups_of(&user);
        // Closed upwards: a group containing any group of the user is one too.
        for (id, group) in graph.iter() {
            if group.member_groups.iter().any(|child| groups.contains(child)) {
                prop_assert!(groups.contains(id));
            }
            if group.member_users.contains(&user) {
                prop_assert!(groups.contains(id));
            }
            // Acyclic: no group reaches itself.
            prop_assert!(!group.member_groups.contains(id));
        }
        // The stored form re-validates.
        let json = serde_json::to_string(&graph).unwrap();
        prop_assert_eq!(serde_json::from_str::<PermissionGroups>(&json).unwrap(), graph);
    }
}

// ---- T1–T4 tree and domains --------------------------------------------

#[test]
fn t1_tree_has_one_root_and_known_parents() {
    let mut tree = tree();
    assert_eq!(tree.root(), &nid("root"));
    assert_eq!(tree.len(), 6);
    assert_eq!(
        tree.add_node(nid("x"), &nid("nowhere")),
        Err(PermissionError::UnknownNode {
            node: nid("nowhere")
        })
    );
    assert_eq!(
        tree.add_node(nid("acme"), &nid("globex")),
        Err(PermissionError::DuplicateNode { node: nid("acme") })
    );
    assert_eq!(
        tree.add_node(nid("root"), &nid("acme")),
        Err(PermissionError::DuplicateNode { node: nid("root") })
    );
    assert!(tree.is_leaf(&nid("acme-store-1")));
    assert!(!tree.is_leaf(&nid("acme")));
    assert_eq!(
        tree.remove_leaf(&nid("acme")),
        Err(PermissionError::NodeHasChildren { node: nid("acme") })
    );
    assert_eq!(
        tree.remove_leaf(&nid("root")),
        Err(PermissionError::NodeHasChildren { node: nid("root") })
    );
    tree.remove_leaf(&nid("globex-hq")).unwrap();
    assert!(!tree.contains(&nid("globex-hq")));
}

#[test]
fn t1_stored_tree_with_cycle_or_parented_root_is_refused() {
    let good = serde_json::to_string(&tree()).unwrap();
    assert_eq!(serde_json::from_str::<NodeTree>(&good).unwrap(), tree());
    let cycle = r#"{"root":"root","parents":{"a":"b","b":"a"}}"#;
    assert!(serde_json::from_str::<NodeTree>(cycle).is_err());
    let self_loop = r#"{"root":"root","parents":{"a":"a"}}"#;
    assert!(serde_json::from_str::<NodeTree>(self_loop).is_err());
    let parented_root = r#"{"root":"root","parents":{"root":"a","a":"root"}}"#;
    assert!(serde_json::from_str::<NodeTree>(parented_root).is_err());
    let dangling = r#"{"root":"root","parents":{"a":"ghost"}}"#;
    assert!(serde_json::from_str::<NodeTree>(dangling).is_err());
    let unknown_field = r#"{"root":"root","parents":{},"extra":1}"#;
    assert!(serde_json::from_str::<NodeTree>(unknown_field).is_err());
}

#[test]
fn t2_is_within_counts_self_and_ancestors_only() {
    let tree = tree();
    assert!(tree.is_within(&nid("acme-store-1"), &nid("acme-store-1")));
    assert!(tree.is_within(&nid("acme-store-1"), &nid("acme")));
    assert!(tree.is_within(&nid("acme-store-1"), &nid("root")));
    assert!(!tree.is_within(&nid("acme"), &nid("acme-store-1")));
    assert!(!tree.is_within(&nid("acme-store-1"), &nid("globex")));
    assert!(!tree.is_within(&nid("ghost"), &nid("root")));
    assert!(!tree.is_within(&nid("acme"), &nid("ghost")));
}

#[test]
fn t3_domains_cover_subtrees_and_root_level_sees_all() {
    let tree = tree();
    let root_level = Domain::new([nid("root")]);
    assert!(root_level.is_root_level(&tree));
    for node in ["root", "acme", "acme-store-1", "globex-hq"] {
        assert!(root_level.contains(&tree, &nid(node)));
    }
    let regional = Domain::new([nid("acme-north"), nid("globex-hq")]);
    assert!(!regional.is_root_level(&tree));
    assert!(regional.contains(&tree, &nid("acme-store-1")));
    assert!(regional.contains(&tree, &nid("globex-hq")));
    assert!(!regional.contains(&tree, &nid("acme")));
    assert!(!regional.contains(&tree, &nid("globex")));
    assert!(!Domain::default().contains(&tree, &nid("root")));
    assert!(!root_level.contains(&tree, &nid("ghost")));
}

#[test]
fn t4_sibling_tenants_never_see_each_other() {
    let tree = tree();
    let graph = PermissionGroups::new();
    let acme_admin = principal("a", Role::Admin, &["acme"], &graph);
    let globex_admin = principal("g", Role::Admin, &["globex"], &graph);
    let acme_media = open_media("acme-store-1", "a");
    let globex_media = open_media("globex-hq", "g");
    assert!(view(&acme_admin, &acme_media, &tree));
    assert!(!view(&acme_admin, &globex_media, &tree));
    assert!(view(&globex_admin, &globex_media, &tree));
    assert!(!view(&globex_admin, &acme_media, &tree));
    assert_eq!(
        view_access(&globex_admin, &acme_media, &tree),
        Access::Denied(Denial::OutsideDomain)
    );
    for permission in Permission::ALL {
        assert!(!can(&globex_admin, permission, &acme_media, &tree));
    }
    // Content at a tenant's node is not visible from the root's other
    // children; it is visible below it, where it is usable (T2), but not
    // above the tenant from a sibling's subtree.
    let tenant_level = open_media("acme", "a");
    let store_user = principal("s", Role::Viewer, &["acme-store-1"], &graph);
    assert!(view(&store_user, &tenant_level, &tree));
    let globex_user = principal("gh", Role::Admin, &["globex-hq"], &graph);
    assert!(!view(&globex_user, &tenant_level, &tree));
}

// ---- P5, P6, P9 media access -------------------------------------------

#[test]
fn p6_view_needs_domain_group_and_entitlement() {
    let tree = tree();
    let mut graph = graph_with(&[("viewers", &[]), ("outer", &[])]);
    graph
        .add_member_group(&gid("outer"), &gid("viewers"))
        .unwrap();
    graph.add_member_user(&gid("viewers"), uid("u")).unwrap();
    let mut media = open_media("acme-store-1", "owner");
    media.open_to_all = false;
    media.allowed_groups = BTreeSet::from([gid("outer")]);
    let member = principal("u", Role::Viewer, &["acme"], &graph);
    let stranger = principal("s", Role::Contributor, &["acme"], &graph);
    let moderator = principal("m", Role::Moderator, &["acme"], &graph);
    assert!(
        view(&member, &media, &tree),
        "transitive member of an allowed group"
    );
    assert_eq!(
        view_access(&stranger, &media, &tree),
        Access::Denied(Denial::NotInAllowedGroup)
    );
    assert!(
        view(&moderator, &media, &tree),
        "M1: Moderator+ view all in domain"
    );

    media.access_groups =
        BTreeSet::from([AccessGroupId::new("lic-1"), AccessGroupId::new("lic-2")]);
    assert_eq!(
        view_access(&member, &media, &tree),
        Access::Denied(Denial::NoEntitlement)
    );
    let entitled = Principal::resolve(
        uid("u"),
        Role::Viewer,
        Domain::new([nid("acme")]),
        &graph,
        BTreeSet::from([AccessGroupId::new("lic-2")]),
    );
    assert!(view(&entitled, &media, &tree));
    let entitled_elsewhere = Principal::resolve(
        uid("u"),
        Role::Viewer,
        Domain::new([nid("acme")]),
        &graph,
        BTreeSet::from([AccessGroupId::new("lic-9")]),
    );
    assert!(!view(&entitled_elsewhere, &media, &tree));
    assert!(
        view(&moderator, &media, &tree),
        "M1: Moderator+ need no entitlement"
    );
    let other_tenant = principal("g", Role::Admin, &["globex"], &graph);
    assert_eq!(
        view_access(&other_tenant, &media, &tree),
        Access::Denied(Denial::OutsideDomain)
    );
}

#[test]
fn p5_m2_publish_settings_gate_share_download_comments_and_rating() {
    let tree = tree();
    let graph = PermissionGroups::new();
    let admin = principal("a", Role::Admin, &["root"], &graph);
    let mut media = open_media("acme", "someone");
    media.publish = PublishSettings::default();
    for permission in Permission::ALL {
        let expected = if permission.publish_gate().is_some() {
            Access::Denied(Denial::BlockedByPublishSettings)
        } else if permission.is_own_media_permission() {
            Access::Denied(Denial::NotOwnMedia)
        } else {
            Access::Granted
        };
        assert_eq!(
            permission_access(&admin, permission, &media, &tree),
            expected,
            "{permission}"
        );
    }
    media.publish.allow_download = true;
    assert!(can(&admin, Permission::Download, &media, &tree));
    assert!(!can(&admin, Permission::Share, &media, &tree));
    assert!(!can(&admin, Permission::CommentAdd, &media, &tree));
    media.publish.allow_share = true;
    assert!(can(&admin, Permission::Share, &media, &tree));
    media.publish.allow_comments = true;
    assert!(can(&admin, Permission::CommentDeleteOthers, &media, &tree));
    assert!(!can(&admin, Permission::Rate, &media, &tree));
    media.publish.allow_rating = true;
    assert!(can(&admin, Permission::Rate, &media, &tree));
}

#[test]
fn p5_group_granted_permission_applies_only_where_viewable_and_held() {
    let tree = tree();
    let mut graph = graph_with(&[("processors", &[Permission::ProcessMedia])]);
    graph.add_member_user(&gid("processors"), uid("u")).unwrap();
    let viewer = principal("u", Role::Viewer, &["acme"], &graph);
    let plain = principal("v", Role::Viewer, &["acme"], &graph);
    let inside = open_media("acme-north", "x");
    let outside = open_media("globex", "x");
    assert!(can(&viewer, Permission::ProcessMedia, &inside, &tree));
    assert!(!can(&viewer, Permission::ProcessMedia, &outside, &tree));
    assert_eq!(
        permission_access(&plain, Permission::ProcessMedia, &inside, &tree),
        Access::Denied(Denial::PermissionNotHeld)
    );
}

#[test]
fn p9_own_media_permission_needs_upload_role_and_ownership() {
    let tree = tree();
    let mut graph = graph_with(&[("annotators", &[Permission::AnnotationViewOwn])]);
    graph
        .add_member_user(&gid("annotators"), uid("viewer"))
        .unwrap();
    let own = open_media("acme", "viewer");
    let contributors_own = open_media("acme", "contrib");
    let viewer = principal("viewer", Role::Viewer, &["acme"], &graph);
    let contributor = principal("contrib", Role::Contributor, &["acme"], &graph);
    let moderator = principal("mod", Role::Moderator, &["acme"], &graph);

    // A Viewer granted the permission by a group still cannot use it: Viewers cannot upload.
    assert!(viewer.permissions().contains(Permission::AnnotationViewOwn));
    assert_eq!(
        permission_access(&viewer, Permission::AnnotationViewOwn, &own, &tree),
        Access::Denied(Denial::RoleCannotUpload)
    );
    // A Contributor may, on media they uploaded only.
    assert!(can(
        &contributor,
        Permission::AnnotationViewOwn,
        &contributors_own,
        &tree
    ));
    assert_eq!(
        permission_access(&contributor, Permission::AnnotationViewOwn, &own, &tree),
        Access::Denied(Denial::NotOwnMedia)
    );
    // Moderators annotate anyone's media through annotation.view_all (P2).
    assert!(can(&moderator, Permission::AnnotationViewAll, &own, &tree));
    // Own-annotation permissions are not own-media permissions.
    assert!(can(
        &contributor,
        Permission::AnnotationEditOwn,
        &own,
        &tree
    ));
    assert!(can(&contributor, Permission::CommentEditOwn, &own, &tree));
}

#[test]
fn p2_moderator_holds_every_media_permission_on_viewable_media() {
    let tree = tree();
    let graph = PermissionGroups::new();
    let moderator = principal("m", Role::Moderator, &["acme"], &graph);
    let media = open_media("acme-store-1", "m");
    for permission in Permission::ALL
        .into_iter()
        .filter(|p| p.is_media_permission())
    {
        assert!(can(&moderator, permission, &media, &tree), "{permission}");
    }
}

fn node_strategy() -> impl Strategy<Value = NodeId> {
    prop::sample::select(vec![
        "root",
        "acme",
        "acme-north",
        "acme-store-1",
        "globex",
        "globex-hq",
        "ghost",
    ])
    .prop_map(nid)
}

proptest! {
    #[test]
    fn p5_can_is_never_true_when_view_is_false(
        role in role(),
        domain in prop::collection::btree_set(node_strategy(), 0..3),
        node in node_strategy(),
        open_to_all in any::<bool>(),
        allowed in prop::collection::btree_set(0..3usize, 0..3),
        member_of in prop::collection::btree_set(0..3usize, 0..3),
        access_groups in prop::collection::btree_set(0..3usize, 0..3),
        entitled in prop::collection::btree_set(0..3usize, 0..3),
        owner_is_user in any::<bool>(),
        publish in any::<(bool, bool, bool, bool)>(),
        grants in prop::collection::vec(0..Permission::ALL.len(), 0..5),
    ) {
        let tree = tree();
        let mut graph = PermissionGroups::new();
        for i in 0..3 {
            let permissions: PermissionSet = grants.iter().map(|p| Permission::ALL[*p]).collect();
            graph.create_group(gid(&format!("g{i}")), GroupDetails::named("g"), permissions).unwrap();
        }
        for i in &member_of {
            graph.add_member_user(&gid(&format!("g{i}")), uid("u")).unwrap();
        }
        let principal = Principal::resolve(
            uid("u"),
            role,
            Domain { nodes: domain },
            &graph,
            entitled.iter().map(|i| AccessGroupId::new(format!("ag{i}"))).collect(),
        );
        let media = MediaAccess {
            node,
            owner: if owner_is_user { uid("u") } else { uid("other") },
            open_to_all,
            allowed_groups: allowed.iter().map(|i| gid(&format!("g{i}"))).collect(),
            access_groups: access_groups.iter().map(|i| AccessGroupId::new(format!("ag{i}"))).collect(),
            publish: PublishSettings { allow_download: publish.0, allow_share: publish.1, allow_comments: publish.2, allow_rating: publish.3 },
        };
        let viewable = view(&principal, &media, &tree);
        for permission in Permission::ALL {
            let allowed = can(&principal, permission, &media, &tree);
            if !viewable {
                prop_assert!(!allowed);
            }
            if allowed {
                prop_assert!(principal.permissions().contains(permission));
                prop_assert!(media.publish.allows(permission));
            }
        }
    }
}
