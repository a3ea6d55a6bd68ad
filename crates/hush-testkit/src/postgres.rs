//! A real PostgreSQL server for tests: `initdb` into a temporary directory,
//! `postgres` on a free 127.0.0.1 port with its unix socket in that
//! directory (never the system service), a database per test, stopped
//! (`pg_ctl stop -m immediate`) and removed on drop.
//!
//! The binaries are looked up in `$HUSH_PG_BIN`, then Debian's
//! `/usr/lib/postgresql/<version>/bin` (newest first), then `$PATH`
//! (`apt-get install postgresql` provides them; `scripts/test.sh` installs
//! it when missing). PostgreSQL refuses to run as root: when the tests run
//! as root (this machine, CI's `.ci/run`), every PostgreSQL command runs as
//! the unprivileged `postgres` user (created by Debian's package; `nobody`
//! otherwise) through `runuser`, and the directory is handed to that user.
//!
//! [`shared`] starts one server per test binary (start-up takes a second or
//! two; each test takes its own database from it) and a watchdog process
//! that stops it when the test binary exits, however it exits. Outage tests
//! take their own [`Postgres::start`] and [`Postgres::restart`] it.
//!
//! This file uses std only, so crates that cannot depend on hush-testkit
//! (hush-store: testkit depends on it) include it with `#[path]`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long start-up may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server (stopped and deleted on drop).
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
    databases: AtomicU64,
    /// Extra `postgres` options (TLS).
    extra: String,
}

/// The server shared by the tests of this test binary (started on first
/// use; stopped by a watchdog when the process exits).
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let pg = Postgres::start();
        pg.watch_process();
        pg
    })
}

/// A fresh database on the [`shared`] server: its URL.
pub fn database() -> String {
    shared().create_database()
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUSH_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no initdb in $HUSH_PG_BIN, /usr/lib/postgresql/*/bin \
                 or $PATH): apt-get install -y postgresql"
            )
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Initialises and starts a new server (panics if it cannot).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Like [`Postgres::start`], serving TLS too (`ssl=on`) with a
    /// certificate for `localhost` and 127.0.0.1 from a test CA made by `openssl`
    /// ([`Postgres::tls_cert`]: trust it with `sslrootcert=`).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The test CA (PEM) that signed a [`Postgres::start_tls`] server's
    /// certificate.
    pub fn tls_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn start_with(tls: bool) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hush-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the PostgreSQL directory");
        let run_as = is_root().then(|| {
            let user = if user_exists("postgres") {
                "postgres"
            } else {
                "nobody"
            };
            let ok = Command::new("chown")
                .arg("-R")
                .arg(user)
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to {user}", dir.display());
            user.to_owned()
        });
        let mut pg = Self {
            bin: bin_dir(),
            dir,
            port: free_port(),
            run_as,
            databases: AtomicU64::new(0),
            extra: String::new(),
        };
        if tls {
            pg.make_certificate();
        }
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "hush",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    /// A test CA and a certificate it signed for the server (`localhost`,
    /// 127.0.0.1),
    /// the key readable by the server only.
    fn make_certificate(&mut self) {
        let (cert, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        let script = "set -e\n\
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hush-test-ca \
              -keyout ca.key -out ca.crt\n\
            openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key \
              -out server.csr\n\
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > server.ext\n\
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
              -extfile server.ext -out server.crt\n";
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "openssl could not make a test certificate");
        if let Some(user) = &self.run_as {
            let ok = Command::new("chown")
                .arg(user)
                .arg(&key)
                .arg(&cert)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the test certificate");
        }
        let ok = Command::new("chmod")
            .arg("600")
            .arg(&key)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chmod the test key");
        self.extra = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `bin/<tool> args…`, as the unprivileged user when root; panics
    /// with its output if it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args).stdin(Stdio::null()).current_dir(&self.dir);
        cmd
    }

    fn start_server(&self) {
        let options = format!(
            // fsync off: only an OS crash loses data then, and tests do not
            // crash the OS; commits stay synchronous, so an immediate stop
            // (a crash of PostgreSQL) keeps every committed transaction.
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=300{}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let data = self.data_dir();
        let log = self.dir.join("postgres.log");
        let started = Instant::now();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-t",
                &START_TIMEOUT.as_secs().to_string(),
                "-w",
                "start",
            ],
        );
        // pg_ctl -w waits for the server to accept connections; the TCP
        // port is checked too.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "PostgreSQL did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://hush@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "hush", &name],
        );
        self.url(&name)
    }

    /// Stops the server at once (`-m immediate`: like a crash; clients see
    /// their connections drop).
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the stopped server again on the same port and data.
    pub fn start_again(&self) {
        self.start_server();
    }

    /// Stops the server abruptly and starts it again (an outage).
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Spawns a watchdog that stops this server and deletes its directory
    /// once the current process has exited (statics are never dropped).
    // The watchdog outlives this process on purpose: it is never waited for.
    #[allow(clippy::zombie_processes)]
    fn watch_process(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- {}", pg_ctl.display()),
            None => pg_ctl.display().to_string(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        // In its own session (setsid), so that killing the test's process
        // group (a timeout) does not take the watchdog with it.
        let mut cmd = if Path::new("/usr/bin/setsid").exists() {
            let mut c = Command::new("/usr/bin/setsid");
            c.arg("sh");
            c
        } else {
            Command::new("sh")
        };
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the PostgreSQL watchdog");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command(
                "pg_ctl",
                &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}
