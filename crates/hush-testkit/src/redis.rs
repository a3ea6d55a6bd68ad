//! A real `redis-server` (the Debian package) for cluster tests: its own
//! process on a free 127.0.0.1 port, nothing saved, its files in a
//! temporary directory; killed on drop. [`RedisServer::restart`] stops it
//! and starts it again on the same port (outage tests);
//! [`RedisServer::start_cluster`] is a one-node Redis Cluster (every slot
//! on it: sharded pub/sub), [`RedisServer::start_sentinel`] a Sentinel
//! watching another server as `mymaster`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra arguments (cluster mode).
    extra: Vec<String>,
    /// Sentinel: the configuration file it runs from.
    sentinel_conf: Option<std::path::PathBuf>,
    /// TLS: the port it also listens on with TLS.
    tls_port: Option<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        Self::start_with(Vec::new(), None, None).await
    }

    async fn start_with(
        extra: Vec<String>,
        sentinel_conf: Option<std::path::PathBuf>,
        tls_port: Option<u16>,
    ) -> Self {
        let mut s = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra,
            sentinel_conf,
            tls_port,
        };
        s.spawn().await;
        s
    }

    /// One that also listens with TLS ([`RedisServer::tls_url`]) under the
    /// certificate `cert` (PEM, also given as its CA file) and key `key`;
    /// clients present no certificate.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let tls_port = free_port();
        let mut extra: Vec<String> = ["--tls-port", &tls_port.to_string()]
            .map(String::from)
            .to_vec();
        for (flag, path) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", cert),
        ] {
            extra.push(flag.into());
            extra.push(path.display().to_string());
        }
        extra.extend(["--tls-auth-clients", "no"].map(String::from));
        Self::start_with(extra, None, Some(tls_port)).await
    }

    /// `rediss://127.0.0.1:<tls port>` (for [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port.unwrap_or(0))
    }

    /// A one-node Redis Cluster holding every slot; waits until the
    /// cluster says `ok`.
    pub async fn start_cluster() -> Self {
        let s = Self::start_with(
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-announce-ip",
                "127.0.0.1",
            ]
            .map(String::from)
            .to_vec(),
            None,
            None,
        )
        .await;
        let r = s.command(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).await;
        assert_eq!(r, "+OK", "CLUSTER ADDSLOTSRANGE: {r}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s
            .command(&["CLUSTER", "INFO"])
            .await
            .contains("cluster_state:ok")
        {
            assert!(
                Instant::now() < deadline,
                "the one-node cluster never became ok"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    /// A Sentinel watching `master` as `mymaster` (quorum 1).
    pub async fn start_sentinel(master: &RedisServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor mymaster 127.0.0.1 {} 1\nsentinel down-after-milliseconds mymaster 5000\n",
                master.port
            ),
        )
        .unwrap();
        let mut s = Self {
            port: free_port(),
            dir,
            child: None,
            extra: Vec::new(),
            sentinel_conf: Some(conf),
            tls_port: None,
        };
        s.spawn().await;
        s
    }

    /// `redis-cluster://127.0.0.1:<port>` (for [`RedisServer::start_cluster`]).
    pub fn cluster_url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.port)
    }

    /// `redis-sentinel://127.0.0.1:<port>?sentinelServiceName=mymaster`
    /// (for [`RedisServer::start_sentinel`]).
    pub fn sentinel_url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName=mymaster",
            self.port
        )
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        if let Some(conf) = &self.sentinel_conf {
            cmd.arg(conf).arg("--sentinel");
        }
        let child = cmd
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "yes", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{bin}: {e} (apt-get install redis-server, or set REDIS_SERVER)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// True when the server answers `PING`.
    pub async fn ping(&self) -> bool {
        let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"+PONG\r\n"
        )
    }

    /// Publishes `payload` on `channel` as any Redis client could (a
    /// third party on the bus); returns the number of receivers.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> i64 {
        let text = self
            .command_bytes(&[b"PUBLISH", channel.as_bytes(), payload])
            .await;
        text.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("PUBLISH answered {text}"))
    }

    /// Sends one command; returns its answer's first line, or a bulk
    /// string's text (enough for the status checks tests make).
    pub async fn command(&self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.command_bytes(&args).await
    }

    async fn command_bytes(&self, args: &[&[u8]]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut cmd = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            cmd.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            cmd.extend_from_slice(arg);
            cmd.extend_from_slice(b"\r\n");
        }
        s.write_all(&cmd).await.unwrap();
        let line = read_line(&mut s).await;
        match line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => {
                let mut body = vec![0u8; n + 2];
                tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut body))
                    .await
                    .unwrap()
                    .unwrap();
                String::from_utf8_lossy(&body[..n]).into_owned()
            }
            None => line,
        }
    }

    /// Stops the server (the port stays reserved for [`RedisServer::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was saved).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `\r\n`-terminated line (without it).
async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        line.push(b[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8_lossy(&line).into_owned()
}
