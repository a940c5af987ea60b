//! A real PostgreSQL for tests (X4): Debian's `postgresql` package,
//! `initdb` into a temporary directory and `pg_ctl start` on a free
//! loopback port, as an unprivileged user (`postgres`, else `nobody`) when
//! the tests run as root, which PostgreSQL refuses. Stopped by its pid
//! when the last test holding it drops it; every wait is bounded. A test
//! process that ends without dropping it (its last holder leaked, the
//! harness exited, the process was killed) does not leave it running: a
//! small guard process, started beside it, stops it by its pid and removes
//! its directory when the test process's end closes the guard's input.
//!
//! Use [`PgServer::shared`] and [`PgServer::database`]: tests running at
//! the same time share one server, each with its own database. Other test
//! crates can include this file with `#[path]`.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The superuser `initdb` makes (trust authentication, loopback only).
const SUPERUSER: &str = "signet";
/// How long the server may take to start or stop.
const WAIT: Duration = Duration::from_secs(30);

/// A running PostgreSQL server; stopped when dropped.
pub struct PgServer {
    /// The temporary directory: `data/`, `sock/`, `log`.
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The postmaster's pid.
    pid: u32,
    /// PostgreSQL's bin directory.
    bin: PathBuf,
    /// Who runs the server's commands (`None`: this process's user).
    user: Option<String>,
    /// Databases made so far (for unique names).
    made: AtomicU32,
    /// The guard (see the module doc): stops the server when its input,
    /// held here, closes with this process.
    guard: Option<std::process::Child>,
}

static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

impl PgServer {
    /// The server the tests running now share, started when none runs.
    pub fn shared() -> Arc<Self> {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Self::start());
        *shared = Arc::downgrade(&server);
        server
    }

    /// Starts a new server (a few tries, in case another process takes the
    /// free port first).
    pub fn start() -> Self {
        let bin = bin_dir();
        let user = run_as();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&bin, user.as_deref()) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("cannot start PostgreSQL: {last}");
    }

    fn try_start(bin: &Path, user: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("signet-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(|e| e.to_string())?;
        if let Some(user) = user {
            let (uid, gid) = ids_of(user);
            for path in [dir.path(), &sock] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        let initdb = run(
            bin,
            user,
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let port = free_port();
        let log = dir.path().join("log");
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 \
             -c shared_buffers=32MB",
            sock.display()
        );
        let started = run(
            bin,
            user,
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                &WAIT.as_secs().to_string(),
                "-o",
                &options,
                "start",
            ],
        );
        if !started.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed: {}{log}",
                String::from_utf8_lossy(&started.stderr)
            ));
        }
        let pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            .ok_or("no postmaster.pid after pg_ctl start")?;
        let guard = guard(pid, dir.path());
        Ok(Self {
            dir,
            port,
            pid,
            bin: bin.to_owned(),
            user: user.map(str::to_owned),
            made: AtomicU32::new(0),
            guard,
        })
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let n = self.made.fetch_add(1, Ordering::SeqCst);
        let name = format!("t_{}_{n}", std::process::id());
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in database `db` with psql; panics with its error.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &port, "-U", SUPERUSER, "-d", db])
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // This drop stops the server itself: the guard goes first.
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
        // Immediate shutdown by pid (SIGQUIT: the server is thrown away, so
        // no checkpoint), then SIGKILL past the bound.
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let deadline = Instant::now() + WAIT;
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts the guard of server `pid` in `dir` (see the module doc): a shell
/// that waits for its input to close, then stops the server by its pid
/// (SIGQUIT, SIGKILL after 30 s) and removes `dir`. `None` when no shell
/// starts (the server is then stopped by drop alone, as before).
fn guard(pid: u32, dir: &Path) -> Option<std::process::Child> {
    const SCRIPT: &str = "read _; kill -QUIT \"$1\" 2>/dev/null; i=0; \
        while kill -0 \"$1\" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
        kill -KILL \"$1\" 2>/dev/null; rm -rf \"$2\"";
    Command::new("sh")
        .args(["-c", SCRIPT, "pg-guard", &pid.to_string()])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// PostgreSQL's bin directory: `initdb` on PATH, else the newest
/// `/usr/lib/postgresql/*/bin` (where Debian installs it).
fn bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_owned))
                    .unwrap_or(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed: `make deps` (Debian's postgresql package) installs it",
    )
}

/// Who runs the server: this process's user, unless that is root.
fn run_as() -> Option<String> {
    if rustix::process::geteuid().as_raw() != 0 {
        return None;
    }
    for user in ["postgres", "nobody"] {
        let known = Command::new("id")
            .args(["-u", user])
            .output()
            .is_ok_and(|o| o.status.success());
        if known {
            return Some(user.to_owned());
        }
    }
    panic!("running as root and neither the postgres nor the nobody user exists");
}

fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Runs `program` of `bin` (as `user` through runuser when set).
fn run(bin: &Path, user: Option<&str>, program: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(program);
    let mut command = match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(&program);
            c
        }
        None => Command::new(&program),
    };
    command
        .args(args)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
