//! The store's conformance suite (S9, X4): every behaviour the hub relies
//! on from its [`Storage`] seam, run against sled and against a real
//! PostgreSQL this test starts (support/postgres.rs). Each case is one
//! async fn over an [`Engine`]; `conformance!` makes a sled and a
//! postgres test of it.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use signet_hub::store::{
    Check, PgStorage, SledStorage, Storage, Store, StoreError, Write, WriteBatch, digest_record,
};

use postgres::PgServer;

/// A store engine that can be opened (and opened again) on the same data.
enum Engine {
    Sled(tempfile::TempDir),
    Postgres { _server: Arc<PgServer>, url: String },
}

impl Engine {
    fn sled() -> Self {
        Self::Sled(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Self {
        let server = PgServer::shared();
        let url = server.database();
        Self::Postgres {
            _server: server,
            url,
        }
    }

    fn open(&self) -> Arc<dyn Storage> {
        match self {
            Self::Sled(dir) => Arc::new(SledStorage::open(dir.path()).unwrap()),
            Self::Postgres { url, .. } => Arc::new(PgStorage::connect(url).unwrap()),
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Engine::sled()).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Engine::postgres()).await;
                }
            )*
        }
    };
}

conformance!(
    s9_a_batch_applies_atomically_across_trees,
    s9_a_failed_check_commits_nothing,
    s9_a_transaction_reads_its_own_writes,
    s9_an_error_in_a_transaction_commits_nothing,
    s9_concurrent_read_modify_writes_lose_no_update,
    s9_a_scanned_range_that_changed_is_read_again,
    s9_only_one_of_racing_claims_of_an_absent_key_wins,
    s9_concurrent_blind_batches_all_apply,
    s9_writes_survive_reopening,
    s9_scans_are_in_byte_order_and_stay_in_their_tree,
    s9_prefix_scans_at_ff_byte_boundaries,
    s9_deletes_and_overwrites_in_one_batch_leave_the_last,
    s9_empty_values_are_present_not_absent,
    s9_large_values_round_trip,
);

fn put(tree: &'static str, key: &[u8], value: &[u8]) -> Write {
    Write::Put {
        tree,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn delete(tree: &'static str, key: &[u8]) -> Write {
    Write::Delete {
        tree,
        key: key.to_vec(),
    }
}

fn batch(writes: Vec<Write>) -> WriteBatch {
    WriteBatch { writes }
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    entries.iter().map(|(k, _)| k.clone()).collect()
}

async fn s9_a_batch_applies_atomically_across_trees(engine: &Engine) {
    let storage = engine.open();
    storage
        .apply(&batch(vec![put("a", b"k", b"1"), put("b", b"k", b"2")]))
        .unwrap();
    assert_eq!(storage.get("a", b"k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(storage.get("b", b"k").unwrap(), Some(b"2".to_vec()));
    storage
        .apply(&batch(vec![delete("a", b"k"), put("b", b"k", b"3")]))
        .unwrap();
    assert_eq!(storage.get("a", b"k").unwrap(), None);
    assert_eq!(
        storage.scan("b", b"").unwrap(),
        vec![(b"k".to_vec(), b"3".to_vec())]
    );
}

async fn s9_a_failed_check_commits_nothing(engine: &Engine) {
    let storage = engine.open();
    storage.apply(&batch(vec![put("t", b"x", b"1")])).unwrap();
    // A record check on a stale value, and a range check on a stale range:
    // each refuses the whole commit, in every tree it writes.
    let stale_record = Check::Record {
        tree: "t",
        key: b"x".to_vec(),
        digest: Some(digest_record(b"0")),
    };
    let stale_range = Check::Range {
        tree: "t",
        prefix: b"x".to_vec(),
        digest: signet_hub::store::digest_range(&[]),
    };
    for check in [stale_record, stale_range] {
        let result = storage.commit(
            &[check],
            &batch(vec![put("t", b"y", b"2"), put("u", b"z", b"3")]),
        );
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        assert_eq!(storage.get("t", b"y").unwrap(), None);
        assert_eq!(storage.get("u", b"z").unwrap(), None);
    }
    // The same commit with checks that hold applies.
    let holds = Check::Record {
        tree: "t",
        key: b"x".to_vec(),
        digest: Some(digest_record(b"1")),
    };
    let absent = Check::Record {
        tree: "t",
        key: b"nothing".to_vec(),
        digest: None,
    };
    storage
        .commit(&[holds, absent], &batch(vec![put("t", b"y", b"2")]))
        .unwrap();
    assert_eq!(storage.get("t", b"y").unwrap(), Some(b"2".to_vec()));
}

async fn s9_a_transaction_reads_its_own_writes(engine: &Engine) {
    let store = Store::new(engine.open());
    store
        .apply({
            let mut b = WriteBatch::new();
            b.put("t", "a/0", &0_u32).unwrap();
            b.put("t", "a/9", &9_u32).unwrap();
            b
        })
        .await
        .unwrap();
    let seen = store
        .transact(|tx| {
            tx.put("t", "a/1", &1_u32)?;
            tx.put("t", "a/2", &2_u32)?;
            tx.delete("t", "a/1");
            tx.delete("t", "a/9");
            let seen: Vec<u32> = tx.scan("t", "a/")?;
            let one = tx.get::<u32>("t", "a/1")?;
            let two = tx.get::<u32>("t", "a/2")?;
            Ok::<_, StoreError>((seen, one, two))
        })
        .await
        .unwrap();
    assert_eq!(seen, (vec![0, 2], None, Some(2)));
    assert_eq!(store.scan::<u32>("t", "a/").unwrap(), vec![0, 2]);
}

async fn s9_an_error_in_a_transaction_commits_nothing(engine: &Engine) {
    let store = Store::new(engine.open());
    let result = store
        .transact(|tx| {
            tx.put("t", "k", &1_u32)?;
            Err::<(), _>(StoreError::Storage("refused".into()))
        })
        .await;
    assert!(result.is_err());
    assert_eq!(store.get::<u32>("t", "k").unwrap(), None);
}

/// Tasks that each read a count and write count + 1: with checks at
/// commit (and re-runs on conflict) no increment is lost.
async fn s9_concurrent_read_modify_writes_lose_no_update(engine: &Engine) {
    let store = Store::new(engine.open());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                store
                    .transact(|tx| {
                        let n: u32 = tx.get("t", "count")?.unwrap_or(0);
                        tx.put("t", "count", &(n + 1))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get::<u32>("t", "count").unwrap(), Some(80));
}

/// A range read is a check too: a slot counted by a scan is not given
/// twice (the group-full rule's shape).
async fn s9_a_scanned_range_that_changed_is_read_again(engine: &Engine) {
    let store = Store::new(engine.open());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transact(|tx| {
                    let taken = tx.scan_keys("slots", "g/")?.len();
                    if taken >= 5 {
                        return Ok(false);
                    }
                    tx.put("slots", &format!("g/{i:02}"), &i)?;
                    Ok::<_, StoreError>(true)
                })
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += usize::from(task.await.unwrap());
    }
    assert_eq!(granted, 5);
    assert_eq!(store.scan_keys("slots", "g/").unwrap().len(), 5);
}

/// Insert-if-absent (a unique name, a pairing code): of racing claims on
/// one absent key exactly one wins.
async fn s9_only_one_of_racing_claims_of_an_absent_key_wins(engine: &Engine) {
    let store = Store::new(engine.open());
    let mut tasks = Vec::new();
    for i in 0..8_u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transact(|tx| {
                    if tx.contains("names", "alice")? {
                        return Ok(false);
                    }
                    tx.put("names", "alice", &i)?;
                    tx.put("owners", &format!("{i}"), &"alice")?;
                    Ok::<_, StoreError>(true)
                })
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.scan_keys("owners", "").unwrap().len(), 1);
}

/// Batches without checks (ingest, outboxes) never fail for concurrency,
/// even when they write the same keys.
async fn s9_concurrent_blind_batches_all_apply(engine: &Engine) {
    let storage = engine.open();
    let mut threads = Vec::new();
    for i in 0..6_u8 {
        let storage = Arc::clone(&storage);
        threads.push(std::thread::spawn(move || {
            for j in 0..20_u8 {
                storage
                    .apply(&batch(vec![
                        put("shared", b"last", &[i, j]),
                        put("own", &[i, j], b"v"),
                        put("shared", b"first", &[i, j]),
                    ]))
                    .unwrap();
            }
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(storage.scan("own", b"").unwrap().len(), 120);
    assert_eq!(storage.scan("shared", b"").unwrap().len(), 2);
}

async fn s9_writes_survive_reopening(engine: &Engine) {
    {
        let store = Store::new(engine.open());
        store
            .transact(|tx| {
                tx.put("t", "kept", &"yes")?;
                tx.put("u", "gone", &1_u32)
            })
            .await
            .unwrap();
        store
            .transact(|tx| {
                tx.delete("u", "gone");
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
    // sled releases its lock from a background thread: open retries.
    let store = Store::new(engine.open());
    assert_eq!(
        store.get::<String>("t", "kept").unwrap().as_deref(),
        Some("yes")
    );
    assert_eq!(store.get::<u32>("u", "gone").unwrap(), None);
}

async fn s9_scans_are_in_byte_order_and_stay_in_their_tree(engine: &Engine) {
    let storage = engine.open();
    let mut stored: Vec<Vec<u8>> = vec![
        b"b".to_vec(),
        b"a".to_vec(),
        b"a/".to_vec(),
        b"a/z".to_vec(),
        b"a/Z".to_vec(),
        b"a/10".to_vec(),
        b"a/9".to_vec(),
        "a/é".as_bytes().to_vec(),
        vec![b'a', b'/', 0x00],
        vec![b'a', b'/', 0x7F],
        vec![b'a', b'/', 0x80],
        b"A".to_vec(),
    ];
    // Written in reverse order, 500 more keys in scrambled order.
    let mut writes: Vec<Write> = stored.iter().rev().map(|k| put("t", k, k)).collect();
    for i in 0..500_u32 {
        let key = format!("n/{:05}", (i * 7919) % 500).into_bytes();
        writes.push(put("t", &key, b""));
        stored.push(key);
    }
    writes.push(put("other", b"a/1", b"x"));
    storage.apply(&batch(writes)).unwrap();
    stored.sort();
    assert_eq!(keys(&storage.scan("t", b"").unwrap()), stored);
    let under_a: Vec<Vec<u8>> = stored
        .iter()
        .filter(|k| k.starts_with(b"a/"))
        .cloned()
        .collect();
    assert_eq!(keys(&storage.scan("t", b"a/").unwrap()), under_a);
    assert_eq!(storage.scan("t", b"n/").unwrap().len(), 500);
    assert!(storage.scan("t", b"zz").unwrap().is_empty());
    assert!(storage.scan("empty", b"").unwrap().is_empty());
}

async fn s9_prefix_scans_at_ff_byte_boundaries(engine: &Engine) {
    let storage = engine.open();
    let all: Vec<Vec<u8>> = vec![
        vec![b'a', 0xFE, 0xFF],
        vec![b'a', 0xFF],
        vec![b'a', 0xFF, 0x00],
        vec![b'a', 0xFF, 0xFF],
        vec![b'a', 0xFF, 0xFF, 0x01],
        vec![b'b'],
        vec![b'b', 0x00],
        vec![0xFF],
        vec![0xFF, 0xFF],
        vec![0xFF, 0xFF, 0xFF],
    ];
    storage
        .apply(&batch(all.iter().map(|k| put("t", k, b"v")).collect()))
        .unwrap();
    let under = |prefix: &[u8]| -> Vec<Vec<u8>> {
        all.iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    };
    for prefix in [
        &[b'a'][..],
        &[b'a', 0xFE],
        &[b'a', 0xFF],
        &[b'a', 0xFF, 0xFF],
        &[0xFF],
        &[0xFF, 0xFF],
        &[0xFF, 0xFF, 0xFF],
        &[0xFF, 0xFF, 0xFF, 0xFF],
        &[],
    ] {
        assert_eq!(
            keys(&storage.scan("t", prefix).unwrap()),
            under(prefix),
            "prefix {prefix:02x?}"
        );
    }
    // A range check over such a prefix holds until a key under it changes.
    let digest = signet_hub::store::digest_range(&storage.scan("t", &[b'a', 0xFF]).unwrap());
    let check = Check::Range {
        tree: "t",
        prefix: vec![b'a', 0xFF],
        digest,
    };
    storage
        .commit(
            std::slice::from_ref(&check),
            &batch(vec![put("t", b"b", b"w")]),
        )
        .unwrap();
    storage
        .apply(&batch(vec![put("t", &[b'a', 0xFF, 0xFF, 0xFF], b"v")]))
        .unwrap();
    assert!(matches!(
        storage.commit(&[check], &batch(vec![put("t", b"c", b"w")])),
        Err(StoreError::Conflict)
    ));
}

async fn s9_deletes_and_overwrites_in_one_batch_leave_the_last(engine: &Engine) {
    let storage = engine.open();
    storage
        .apply(&batch(vec![put("t", b"a", b"1"), put("t", b"b", b"1")]))
        .unwrap();
    storage
        .apply(&batch(vec![
            delete("t", b"a"),
            put("t", b"a", b"2"),
            put("t", b"b", b"2"),
            delete("t", b"b"),
            put("t", b"c", b"1"),
            put("t", b"c", b"3"),
            delete("t", b"never-there"),
        ]))
        .unwrap();
    assert_eq!(
        storage.scan("t", b"").unwrap(),
        vec![
            (b"a".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
    // Deleting what is absent is no error.
    storage.apply(&batch(vec![delete("t", b"b")])).unwrap();
    assert_eq!(storage.get("t", b"b").unwrap(), None);
}

async fn s9_empty_values_are_present_not_absent(engine: &Engine) {
    let storage = engine.open();
    storage.apply(&batch(vec![put("t", b"k", b"")])).unwrap();
    assert_eq!(storage.get("t", b"k").unwrap(), Some(Vec::new()));
    assert_eq!(
        storage.scan("t", b"k").unwrap(),
        vec![(b"k".to_vec(), Vec::new())]
    );
    // An empty value and an absent one are different reads.
    let present = Check::Record {
        tree: "t",
        key: b"k".to_vec(),
        digest: None,
    };
    assert!(matches!(
        storage.commit(&[present], &batch(vec![put("t", b"x", b"1")])),
        Err(StoreError::Conflict)
    ));
    let empty = Check::Record {
        tree: "t",
        key: b"k".to_vec(),
        digest: Some(digest_record(b"")),
    };
    storage
        .commit(&[empty], &batch(vec![put("t", b"x", b"1")]))
        .unwrap();
}

/// Values far above any record the hub writes (request bodies are at
/// most `max_body_bytes`, 1 MiB by default).
async fn s9_large_values_round_trip(engine: &Engine) {
    let storage = engine.open();
    let large: Vec<u8> = (0..8 * 1024 * 1024_u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let key = vec![b'k'; 1024];
    storage
        .apply(&batch(vec![
            put("t", &key, &large),
            put("t", b"small", b"1"),
        ]))
        .unwrap();
    assert_eq!(storage.get("t", &key).unwrap().as_deref(), Some(&large[..]));
    let check = Check::Record {
        tree: "t",
        key: key.clone(),
        digest: Some(digest_record(&large)),
    };
    storage
        .commit(&[check], &batch(vec![delete("t", &key)]))
        .unwrap();
    assert_eq!(storage.get("t", &key).unwrap(), None);
}

/// The PostgreSQL engine works from a current-thread runtime too (where
/// most of the hub's tests run), and outside any runtime.
#[tokio::test]
async fn x4_postgres_serves_a_current_thread_runtime() {
    let engine = Engine::postgres();
    let store = Store::new(engine.open());
    store.transact(|tx| tx.put("t", "k", &1_u32)).await.unwrap();
    assert_eq!(store.get::<u32>("t", "k").unwrap(), Some(1));
    let storage = engine.open();
    let read = std::thread::spawn(move || storage.get("t", b"k").unwrap())
        .join()
        .unwrap();
    assert_eq!(read, Some(b"1".to_vec()));
}

/// A server that cannot be reached is a clear error within the bound, not
/// a hang, and the URL's password is not repeated.
#[test]
fn x4_an_unreachable_postgres_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Err(e) = PgStorage::connect(&format!("postgres://u:secret@127.0.0.1:{port}/db")) else {
        panic!("connected to nothing");
    };
    let message = e.to_string();
    assert!(message.contains("postgres"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

/// Runs `signet-hub migrate` with `args`; (success, stdout, stderr).
fn migrate(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet-hub"))
        .arg("migrate")
        .args(args)
        .env("SIGNET_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `signet-hub migrate` (X4): every tree arrives as it was (over several
/// copying transactions), a second run changes nothing, a target holding
/// records the source has not is refused naming the tree, and bad
/// arguments are clear errors.
#[test]
fn x4_migrate_copies_every_tree_idempotently_and_checks_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store_dir = signet_hub::store::store_dir(&data);
    let trees: [&'static str; 3] = ["events", "users", "values"];
    {
        let storage = SledStorage::open(&store_dir).unwrap();
        let mut writes: Vec<Write> = (0..2500_u32)
            .map(|i| put("events", format!("e/{i:05}").as_bytes(), &[7; 100]))
            .collect();
        writes.push(put("users", b"u-1", br#"{"name":"admin"}"#));
        writes.push(put("values", b"empty", b""));
        writes.push(put("values", &[0xFF, 0x00], &[0xFF]));
        storage.apply(&batch(writes)).unwrap();
    }
    let server = PgServer::shared();
    let url = server.database();
    let data_arg = data.to_str().unwrap();
    for _ in 0..2 {
        let (ok, stdout, stderr) = migrate(&["--from", data_arg, "--to", &url]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("events: 2500 records"), "{stdout}");
        assert!(
            stdout.contains("copied 2503 records in 3 trees"),
            "{stdout}"
        );
    }
    {
        let source = SledStorage::open(&store_dir).unwrap();
        let target = PgStorage::connect(&url).unwrap();
        for tree in trees {
            assert_eq!(
                target.scan(tree, b"").unwrap(),
                source.scan(tree, b"").unwrap(),
                "{tree}"
            );
        }
        target
            .apply(&batch(vec![put("users", b"u-2", b"{}")]))
            .unwrap();
    }
    // The store directory itself names the source too.
    let (ok, _, stderr) = migrate(&["--from", store_dir.to_str().unwrap(), "--to", &url]);
    assert!(!ok);
    assert!(stderr.contains("tree users"), "{stderr}");
    let nothing = dir.path().join("nothing");
    let (ok, _, stderr) = migrate(&["--from", nothing.to_str().unwrap(), "--to", &url]);
    assert!(!ok);
    assert!(
        stderr.contains("neither a Signet data directory"),
        "{stderr}"
    );
    let (ok, _, stderr) = migrate(&["--from", data_arg, "--to", "/tmp/x"]);
    assert!(!ok);
    assert!(stderr.contains("--to must be a postgres://"), "{stderr}");
}
