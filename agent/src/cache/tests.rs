#![allow(clippy::unwrap_used)]

use super::*;
use chrono::TimeZone as _;

/// A store and a cache in a fresh data dir.
fn setup(limit: u64) -> (tempfile::TempDir, Store, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = Cache::open(dir.path(), &store, limit).unwrap();
    (dir, store, cache)
}

/// Puts `bytes` into the cache through the download admission path.
fn put(cache: &Cache, bytes: &[u8]) -> Sha256 {
    let sha = Sha256::of(bytes);
    fs::write(cache.partial_path(&sha), bytes).unwrap();
    assert_eq!(
        cache.admit_partial(&sha, bytes.len() as u64).unwrap(),
        Admission::Admitted
    );
    sha
}

fn indexed(store: &Store, sha: &Sha256) -> bool {
    store
        .tree(INDEX_TREE)
        .unwrap()
        .contains_key(sha.to_string())
        .unwrap()
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
}

fn quarantined(cache: &Cache) -> Vec<String> {
    list_dir(&cache.quarantine_dir())
        .unwrap()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect()
}

/// D2: a partial whose bytes do not hash to its name is never admitted.
#[test]
fn d2_admission_refuses_wrong_bytes_and_deletes_the_partial() {
    let (_dir, store, cache) = setup(1 << 20);
    let sha = Sha256::of(b"the real bytes");
    fs::write(cache.partial_path(&sha), b"other bytes!!!").unwrap();
    let outcome = cache.admit_partial(&sha, 14).unwrap();
    assert_eq!(
        outcome,
        Admission::Mismatch {
            actual: Sha256::of(b"other bytes!!!"),
            len: 14
        }
    );
    assert!(!cache.contains(&sha));
    assert!(!cache.blob_path(&sha).exists());
    assert!(!cache.partial_path(&sha).exists());
    assert!(!indexed(&store, &sha));
}

/// D9: a blob changed on disk is quarantined, dropped from the set and
/// the index; an intact one stays.
#[test]
fn d9_reverify_quarantines_a_modified_blob() {
    let (_dir, store, cache) = setup(1 << 20);
    let good = put(&cache, b"good bytes");
    let bad = put(&cache, b"soon tampered");
    assert!(indexed(&store, &bad));
    fs::write(cache.blob_path(&bad), b"tampered!!!!!").unwrap();

    assert_eq!(cache.reverify(&good).unwrap(), Reverified::Intact);
    assert_eq!(cache.reverify(&bad).unwrap(), Reverified::Quarantined);
    assert!(cache.contains(&good));
    assert!(!cache.contains(&bad));
    assert!(!cache.blob_path(&bad).exists());
    assert!(!indexed(&store, &bad));
    let names = quarantined(&cache);
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{bad}.")));
    assert_eq!(
        fs::read(cache.quarantine_dir().join(&names[0])).unwrap(),
        b"tampered!!!!!"
    );
    assert_eq!(cache.reverify(&bad).unwrap(), Reverified::Absent);
    // The sled index survives a reopen without the quarantined blob.
    drop(cache);
    let cache = Cache::open(store.dir(), &store, 1 << 20).unwrap();
    verify_all(&cache);
    assert!(cache.contains(&good));
    assert!(!cache.contains(&bad));
}

/// D9: watcher events — a blob path is re-verified, a stray file in
/// `blobs/` is removed, paths elsewhere are ignored.
#[test]
fn d9_reverify_path_handles_blobs_and_strays() {
    let (dir, _store, cache) = setup(1 << 20);
    let sha = put(&cache, b"watched");
    fs::write(cache.blob_path(&sha), b"changed").unwrap();
    assert_eq!(
        cache.reverify_path(&cache.blob_path(&sha)).unwrap(),
        Some((sha, Reverified::Quarantined))
    );
    let stray = cache.blobs_dir().join(".swp123");
    fs::write(&stray, b"editor temp").unwrap();
    assert_eq!(cache.reverify_path(&stray).unwrap(), None);
    assert!(!stray.exists());
    let elsewhere = dir.path().join("agent.toml");
    fs::write(&elsewhere, b"x").unwrap();
    assert_eq!(cache.reverify_path(&elsewhere).unwrap(), None);
    assert!(elsewhere.exists());
}

/// D9, A8: the race behind a flaky end-to-end test, in order. A file
/// changed in place is seen first by the player's play-time check (inside
/// the watcher's 200 ms debounce): it goes to the verification queue,
/// whose hash quarantines it — the daemon reports that outcome in the same
/// words as the watcher's. The watcher's change, handed on late, finds the
/// file gone (`Absent`) and quarantines nothing twice.
#[test]
fn d9_a_change_the_player_sees_before_the_watcher_is_quarantined_once() {
    let (_dir, _store, cache) = setup(1 << 20);
    let sha = put(&cache, b"played bytes");
    let path = cache.blob_path(&sha);
    fs::write(&path, b"tampered!!!!").unwrap();

    assert!(cache.open_verified(&sha).is_none(), "the player refuses it");
    assert!(cache.awaits_verification(&sha));
    assert_eq!(
        cache.verify_next().unwrap(),
        Some((sha, Reverified::Quarantined))
    );
    assert_eq!(quarantined(&cache).len(), 1);
    assert!(!path.exists() && !cache.contains(&sha));

    assert_eq!(
        cache.reverify_path(&path).unwrap(),
        Some((sha, Reverified::Absent))
    );
    assert_eq!(quarantined(&cache).len(), 1, "quarantined once");
    assert!(!cache.awaits_verification(&sha) && !cache.contains(&sha));
}

/// Hashes every blob waiting for verification.
fn verify_all(cache: &Cache) -> Vec<(Sha256, Reverified)> {
    let mut outcomes = Vec::new();
    while let Some(outcome) = cache.verify_next().unwrap() {
        outcomes.push(outcome);
    }
    outcomes
}

/// Overwrites `path` with `bytes` in place and restores its mtime, as
/// `cp other path && touch -r saved path` does.
fn swap_keeping_mtime(path: &Path, bytes: &[u8]) {
    let mtime = fs::metadata(path).unwrap().modified().unwrap();
    let len = fs::metadata(path).unwrap().len();
    assert_eq!(bytes.len() as u64, len, "a substitute of the same size");
    fs::write(path, bytes).unwrap();
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

/// A8, D9: a blob swapped for other bytes of the same size with its
/// mtime restored while the agent was down is not trusted at `open`:
/// it waits for verification, is hashed, quarantined with the
/// substitute's bytes and dropped from the index; the intact one is
/// verified. Nothing is present before it hashed.
#[test]
fn a8_d9_a_blob_swapped_while_stopped_with_its_mtime_restored_is_quarantined() {
    let (dir, store, cache) = setup(1 << 20);
    let intact = put(&cache, b"intact bytes");
    let swapped = put(&cache, b"the original");
    let path = cache.blob_path(&swapped);
    drop(cache);
    swap_keeping_mtime(&path, b"a substitute");

    let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
    assert!(!cache.contains(&swapped) && !cache.contains(&intact));
    assert!(cache.awaits_verification(&swapped));
    assert!(cache.open_verified(&swapped).is_none());
    assert_eq!(cache.used_bytes(), 24, "waiting blobs still count");
    let outcomes: BTreeMap<Sha256, Reverified> = verify_all(&cache).into_iter().collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([
            (intact, Reverified::Intact),
            (swapped, Reverified::Quarantined)
        ])
    );
    assert!(cache.contains(&intact) && !cache.contains(&swapped));
    assert!(!cache.awaits_verification(&swapped));
    assert!(!indexed(&store, &swapped));
    assert!(cache.open_verified(&intact).is_some());
    let names = quarantined(&cache);
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{swapped}.")));
    assert_eq!(
        fs::read(cache.quarantine_dir().join(&names[0])).unwrap(),
        b"a substitute"
    );
}

/// A8, D9: a verified blob replaced in place after it was hashed (same
/// size, mtime restored, no watcher running) is not handed to the
/// player: `open_verified` sees the other stamp, sends it back to
/// verification, and the next hash quarantines it. A handle opened
/// before a replacement by rename keeps reading the verified file.
#[test]
fn a8_d9_a_blob_replaced_after_verification_is_not_opened_for_playing() {
    let (_dir, _store, cache) = setup(1 << 20);
    let sha = put(&cache, b"verified bytes");
    let path = cache.blob_path(&sha);
    let held = cache.open_verified(&sha).unwrap();
    // Replaced by a rename: the held handle still reads the original.
    let other = path.with_extension("tmp");
    fs::write(&other, b"renamed bytes!").unwrap();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    fs::File::options()
        .write(true)
        .open(&other)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&other, &path).unwrap();
    let mut read = Vec::new();
    (&held).read_to_end(&mut read).unwrap();
    assert_eq!(read, b"verified bytes");

    assert!(cache.open_verified(&sha).is_none());
    assert!(!cache.contains(&sha) && cache.awaits_verification(&sha));
    assert_eq!(verify_all(&cache), vec![(sha, Reverified::Quarantined)]);
    assert!(cache.open_verified(&sha).is_none());

    // In place, same size, mtime restored.
    let sha = put(&cache, b"second original");
    assert!(cache.open_verified(&sha).is_some());
    swap_keeping_mtime(&cache.blob_path(&sha), b"second imposter");
    assert!(cache.open_verified(&sha).is_none());
    assert_eq!(verify_all(&cache), vec![(sha, Reverified::Quarantined)]);
}

/// A8: waiting blobs are hashed in order — what the player waits for
/// first, then the most recently needed, never-needed last.
#[test]
fn a8_verification_order_is_urgent_then_most_recently_needed() {
    let (dir, store, cache) = setup(1 << 20);
    let old = put(&cache, b"needed at 1");
    let new = put(&cache, b"needed at 3");
    let never = put(&cache, b"never needed");
    let urgent = put(&cache, b"the player waits");
    for (sha, hour) in [(old, 1), (new, 3), (urgent, 2)] {
        cache
            .make_room(&BTreeMap::from([(sha, 11)]), at(hour))
            .unwrap();
    }
    drop(cache);
    let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
    cache.prioritize(&urgent);
    cache.prioritize(&Sha256::of(b"not waiting"));
    let order: Vec<Sha256> = verify_all(&cache).into_iter().map(|(s, _)| s).collect();
    assert_eq!(order, vec![urgent, new, old, never]);
}

/// D10: the quarantine keeps at most its byte bound; a file over it on
/// its own is deleted, not kept.
#[test]
fn quarantine_is_bounded_in_bytes() {
    let (_dir, _store, cache) = setup(QUARANTINE_MAX_BYTES * 2);
    let sha = Sha256::of(b"big");
    let path = cache.blob_path(&sha);
    let file = fs::File::create(&path).unwrap();
    file.set_len(QUARANTINE_MAX_BYTES + 1).unwrap();
    drop(file);
    assert_eq!(cache.quarantine_file(&sha, &path).unwrap(), None);
    assert!(quarantined(&cache).is_empty());
    fs::write(&path, b"small").unwrap();
    let kept = cache.quarantine_file(&sha, &path).unwrap().unwrap();
    assert_eq!(fs::read(kept).unwrap(), b"small");
}

/// D9/D2: tampering while the agent was down — a modified blob, a stray
/// file, an unindexed file with a wrong name, a deleted blob, a blob
/// that landed before its index record, leftover partials — leaves only
/// intact verified blobs after `open` and verification.
#[test]
fn d9_d2_open_after_tampering_keeps_only_intact_blobs() {
    let (dir, store, cache) = setup(1 << 20);
    let intact = put(&cache, b"intact");
    let modified = put(&cache, b"modified later");
    let deleted = put(&cache, b"deleted later");
    let blobs = cache.blobs_dir();
    drop(cache);

    // Same size, other bytes, and a different mtime.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(blobs.join(modified.to_string()))
        .unwrap();
    std::io::Write::write_all(&mut &file, b"MODIFIED later").unwrap();
    file.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    fs::remove_file(blobs.join(deleted.to_string())).unwrap();
    fs::write(blobs.join("stray.txt"), b"stray").unwrap();
    fs::create_dir(blobs.join("a-directory")).unwrap();
    let liar = Sha256::of(b"what the name claims");
    fs::write(blobs.join(liar.to_string()), b"something else").unwrap();
    // Killed after the rename, before the index record (D2).
    let renamed = Sha256::of(b"renamed before the crash");
    fs::write(blobs.join(renamed.to_string()), b"renamed before the crash").unwrap();
    let partial_dir = dir.path().join("cache").join("partial");
    let resumable = Sha256::of(b"half");
    fs::write(partial_dir.join(resumable.to_string()), b"ha").unwrap();
    fs::write(partial_dir.join(intact.to_string()), b"int").unwrap();
    fs::write(partial_dir.join("junk.tmp"), b"junk").unwrap();

    let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
    assert!(cache.entries().iter().all(|e| !cache.contains(&e.sha256)));
    verify_all(&cache);
    let mut present: Vec<Sha256> = cache.entries().iter().map(|e| e.sha256).collect();
    present.sort();
    let mut expected = vec![intact, renamed];
    expected.sort();
    assert_eq!(present, expected);
    let mut on_disk: Vec<String> = list_dir(&blobs)
        .unwrap()
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    on_disk.sort();
    let mut expected_names = vec![intact.to_string(), renamed.to_string()];
    expected_names.sort();
    assert_eq!(on_disk, expected_names);
    assert!(cache.contains(&renamed) && indexed(&store, &renamed));
    assert!(!cache.contains(&modified) && !indexed(&store, &modified));
    assert!(!indexed(&store, &deleted));
    assert_eq!(quarantined(&cache).len(), 1);
    assert!(quarantined(&cache)[0].starts_with(&modified.to_string()));
    // The resumable partial stays; the one of a present blob and the
    // junk go.
    assert_eq!(cache.partial_len(&resumable), 2);
    assert_eq!(cache.partial_len(&intact), 0);
    assert!(!partial_dir.join("junk.tmp").exists());
    assert_eq!(cache.used_bytes(), 6 + 24 + 2);
}

/// D10: eviction removes what no manifest needs, least recently needed
/// first, only as much as needed; the needed set is never evicted.
#[test]
fn d10_make_room_evicts_least_recently_needed_unneeded_first() {
    let (_dir, _store, cache) = setup(100);
    let a = put(&cache, &[b'a'; 30]);
    let b = put(&cache, &[b'b'; 30]);
    let c = put(&cache, &[b'c'; 30]);
    // a was needed at 1:00, b at 3:00, c at 2:00.
    for (sha, hour) in [(a, 1), (b, 3), (c, 2)] {
        cache
            .make_room(&BTreeMap::from([(sha, 30)]), at(hour))
            .unwrap();
    }
    let wanted = Sha256::of(b"new");
    // 90 used + 40 missing > 100: evict 30 (a, the oldest) → 60 + 40.
    let evicted = cache
        .make_room(&BTreeMap::from([(wanted, 40)]), at(4))
        .unwrap();
    assert_eq!(evicted, vec![a]);
    assert!(!cache.blob_path(&a).exists());
    assert!(cache.contains(&b) && cache.contains(&c));
    // Needing b and 60 more: c (unneeded) goes, b stays, marked at 5:00.
    let evicted = cache
        .make_room(&BTreeMap::from([(b, 30), (wanted, 60)]), at(5))
        .unwrap();
    assert_eq!(evicted, vec![c]);
    let b_entry = cache.entries().into_iter().find(|e| e.sha256 == b).unwrap();
    assert_eq!(b_entry.last_needed, Some(at(5)));
    // The mark of a missing blob is applied when it is admitted.
    let admitted = put(&cache, b"new");
    let entry = cache
        .entries()
        .into_iter()
        .find(|e| e.sha256 == admitted)
        .unwrap();
    assert_eq!(entry.last_needed, Some(at(5)));
}

/// D10: a needed set larger than the limit is refused and nothing is
/// evicted.
#[test]
fn d10_make_room_refuses_when_the_needed_set_exceeds_the_limit() {
    let (_dir, _store, cache) = setup(100);
    let a = put(&cache, &[b'a'; 50]);
    let partial = Sha256::of(b"partial");
    fs::write(cache.partial_path(&partial), b"par").unwrap();
    let needed = BTreeMap::from([(Sha256::of(b"x"), 60), (Sha256::of(b"y"), 41)]);
    let full = cache.make_room(&needed, at(1)).unwrap_err();
    assert_eq!(
        full,
        CacheFull {
            needed_bytes: 101,
            limit_bytes: 100
        }
    );
    assert!(full.to_string().contains("101 bytes"));
    assert!(cache.contains(&a));
    assert_eq!(cache.partial_len(&partial), 3);
    // A raised limit (config reload) lets the same set in.
    cache.set_limit(200);
    assert_eq!(
        cache.make_room(&needed, at(1)).unwrap(),
        Vec::<Sha256>::new()
    );
    // Unneeded partials go even when no blob must.
    assert_eq!(cache.partial_len(&partial), 0);
}

/// The purge command: every blob, partial and quarantined file not of a
/// needed item goes.
#[test]
fn purge_unneeded_removes_everything_not_needed() {
    let (_dir, store, cache) = setup(1 << 20);
    let keep = put(&cache, b"keep");
    let drop_me = put(&cache, b"drop");
    let keep_partial = Sha256::of(b"keep partial");
    let drop_partial = Sha256::of(b"drop partial");
    fs::write(cache.partial_path(&keep_partial), b"kee").unwrap();
    fs::write(cache.partial_path(&drop_partial), b"dro").unwrap();
    let quarantine = cache.quarantine_dir();
    fs::write(quarantine.join(format!("{keep}.1")), b"bad keep").unwrap();
    fs::write(quarantine.join(format!("{drop_me}.2")), b"bad drop").unwrap();
    fs::write(quarantine.join("junk"), b"junk").unwrap();
    let removed = cache
        .purge_unneeded(&BTreeSet::from([keep, keep_partial]))
        .unwrap();
    assert_eq!(removed, vec![drop_me]);
    assert!(cache.contains(&keep) && !cache.contains(&drop_me));
    assert!(!cache.blob_path(&drop_me).exists());
    assert!(!indexed(&store, &drop_me));
    assert_eq!(cache.partial_len(&keep_partial), 3);
    assert_eq!(cache.partial_len(&drop_partial), 0);
    assert_eq!(cache.used_bytes(), 4 + 3);
    // The quarantined copy of a needed item stays (D9); the rest go.
    assert_eq!(quarantined(&cache), vec![format!("{keep}.1")]);
}

/// Quarantine is bounded: only the newest files stay (D10).
#[test]
fn quarantine_keeps_only_the_newest_files() {
    let (_dir, _store, cache) = setup(1 << 20);
    for i in 0..QUARANTINE_KEEP + 2 {
        let bytes = format!("blob {i}");
        let sha = put(&cache, bytes.as_bytes());
        fs::write(cache.blob_path(&sha), b"garbage").unwrap();
        assert_eq!(cache.reverify(&sha).unwrap(), Reverified::Quarantined);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(quarantined(&cache).len(), QUARANTINE_KEEP);
}
