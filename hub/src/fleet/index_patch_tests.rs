//! X3, U4 (issue 20): what a group change costs the fleet index — a new
//! manifest, or items of a group whose licence lets its members play —
//! with every answer equal to a full recomputation.

use super::*;

/// X3, U4 (issue 20): a group's new manifest version gives the devices
/// whose assignment names it that record alone (no device read again), and
/// items added to or removed from an access group whose licence lets its
/// members play read no device (their refusals do not rest on them); items
/// of a group whose licence refuses its members read those members again
/// (the refusals list the items). Every answer equals a full
/// recomputation, and the refusals shown follow the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x3_u4_manifests_and_items_of_allowed_members_read_no_device() {
    let (_dir, hub, _clock) = fixture_hub(230).await;
    let site = NodeId::from("n-fixture-r000-s0001");
    let attached = attached_devices(&hub.store).unwrap();
    let at_site = attached.iter().filter(|(_, n)| *n == site).count();
    let members: Vec<DeviceId> = attached
        .iter()
        .step_by(23)
        .map(|(d, _)| d.clone())
        .collect();
    let mut group = licensed_group(&hub, "ag-patch", &members).await;
    set_license(&hub, &mut group, LicenseTerms::default()).await;
    let scope = GroupRef::Node(site.clone());
    publish::publish(&hub, &scope, publish::Actor::hub())
        .await
        .unwrap();
    let index = FleetIndex::of(&hub);
    assert_exact(&hub, &index, "built");
    let refused = |hub: &Hub| {
        let (_, views) = full(hub, &|_| true, Liveness::of(hub));
        views
            .iter()
            .filter(|v| !v.licence_refusals.is_empty())
            .count()
    };
    assert_eq!(refused(&hub), 0);

    let before = index.work();
    bump_manifest(&hub, &site).await;
    assert_exact(&hub, &index, "a new manifest");
    let after = index.work();
    assert_eq!(
        (after.builds, after.device_reads),
        (before.builds, before.device_reads)
    );
    assert!(
        after.patched - before.patched >= u64::try_from(at_site).unwrap(),
        "the site's {at_site} devices patched: {after:?}"
    );

    let written = group.clone();
    let add = |item: &'static str| {
        let (hub, group) = (hub.clone(), written.clone());
        async move {
            let put = |tx: &mut Tx| put_item(tx, &group, item);
            hub.store.transact(put).await.unwrap();
        }
    };
    add("c-second").await;
    assert_exact(&hub, &index, "an item of an allowed group");
    let allowed = index.work();
    assert_eq!(
        (allowed.builds, allowed.device_reads),
        (after.builds, after.device_reads)
    );

    // Refused (Germany only, no node has a country): the members' refusals
    // list the items, so an item change reads the members again.
    let germany = LicenseTerms {
        allowed_countries: Some(vec!["DE".into()]),
        ..LicenseTerms::default()
    };
    set_license(&hub, &mut group, germany).await;
    assert_exact(&hub, &index, "Germany only");
    assert_eq!(refused(&hub), members.len());
    let refusing = index.work();
    add("c-third").await;
    assert_exact(&hub, &index, "an item of a refusing group");
    let (_, views) = full(&hub, &|_| true, Liveness::of(&hub));
    let listed = |v: &FleetDevice| v.licence_refusals.iter().any(|r| r.item_count == 3);
    assert_eq!(views.iter().filter(|v| listed(v)).count(), members.len());
    let read = index.work().device_reads - refusing.device_reads;
    assert_eq!(read, u64::try_from(members.len()).unwrap(), "the members");
}
