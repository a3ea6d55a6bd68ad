//! `hush serve` as an operator runs it: JSON logs with levels from `HUSH_LOG`,
//! the metrics port, TLS from PEM files, SIGHUP reloading the certificate, and
//! SIGTERM draining to a clean exit.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStderr, ChildStdout};

const WAIT: Duration = Duration::from_secs(20);

async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.next_line().await.unwrap().expect("stdout ended");
            if let Some(rest) = l.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    })
    .await
    .expect("line on stdout")
}

/// Reads JSON log lines until one whose message contains `needle`; every line
/// read must be JSON.
async fn log_with(lines: &mut Lines<BufReader<ChildStderr>>, needle: &str) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.next_line().await.unwrap().expect("stderr ended");
            let v: Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
            assert_ne!(v["level"], "DEBUG", "HUSH_LOG=info must hide debug: {v}");
            if v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))
            {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
}

fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn json_logs_metrics_tls_sighup_and_sigterm() {
    let dir = std::env::temp_dir().join(format!("hush-serve-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write_cert = || {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    };
    write_cert();

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--port", "0"])
        .current_dir(&dir)
        .env("HUSH_LOG", "info")
        .env("HUSH_SERVER__LOG_FORMAT", "json")
        .env("HUSH_METRICS__ENABLED", "true")
        .env("HUSH_METRICS__PORT", "0")
        .env("HUSH_SERVER__TLS__CERT_FILE", &cert)
        .env("HUSH_SERVER__TLS__KEY_FILE", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();

    line_with(&mut out, "hush listening on ").await;
    let metrics: std::net::SocketAddr = line_with(&mut out, "metrics on http://")
        .await
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let started = log_with(&mut err, "hush started").await;
    assert_eq!(started["level"], "INFO");

    // The metrics port answers in the Prometheus text format.
    let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let body = buf.split_once("\r\n\r\n").unwrap().1;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(
        scrape
            .samples
            .iter()
            .any(|x| x.metric == "hush_connections" && x.labels.get("app") == Some("app-id")),
        "{body}"
    );

    // SIGHUP with a new certificate: reloaded. With a broken key: an error,
    // and the server keeps serving.
    write_cert();
    kill(pid, "-HUP");
    log_with(&mut err, "TLS certificate reloaded").await;
    std::fs::write(&key, "broken").unwrap();
    kill(pid, "-HUP");
    let failed = log_with(&mut err, "TLS reload failed").await;
    assert_eq!(failed["level"], "ERROR");

    // SIGTERM drains and exits 0.
    kill(pid, "-TERM");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a WebSocket with these extra headers and returns the first frame.
async fn ws_first_frame(addr: &str, headers: &[(&'static str, &str)]) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/app/app-key?protocol=7")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn forwarded_for_is_logged_only_from_trusted_proxies() {
    let dir = std::env::temp_dir().join(format!("hush-serve-xff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |trusted: &'static str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
        for (k, _) in std::env::vars() {
            if k.starts_with("HUSH_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.args(["serve", "--port", "0"])
            .current_dir(&dir)
            .env(
                "HUSH_LOG",
                "warn,hush_server::gateway=info,hush::app_sources=info",
            )
            .env("HUSH_SERVER__LOG_FORMAT", "json")
            .env("HUSH_SERVER__TRUSTED_PROXIES", trusted)
            .env(
                "HUSH_DEVELOPMENT_APP__ALLOWED_ORIGINS",
                r#"["https://good.example"]"#,
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    for (trusted, expect) in [(r#"["127.0.0.1"]"#, "203.0.113.7"), ("[]", "127.0.0.1")] {
        let mut child = run(trusted);
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = line_with(&mut out, "hush listening on ").await;
        let ok = ws_first_frame(&addr, &[("origin", "https://good.example")]).await;
        assert_eq!(ok["event"], "pusher:connection_established", "{ok}");
        let refused = ws_first_frame(
            &addr,
            &[
                ("origin", "https://evil.example"),
                ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
            ],
        )
        .await;
        assert_eq!(refused["data"]["code"], 4009, "{refused}");
        let line = log_with(&mut err, "origin not allowed").await;
        assert_eq!(line["fields"]["client"], expect, "{line}");
        assert_eq!(line["fields"]["origin"], "https://evil.example");
        // Without TLS, SIGHUP (systemctl reload) re-reads the apps (none
        // changed) and the server keeps serving.
        kill(child.id().unwrap(), "-HUP");
        let hup = log_with(&mut err, "apps reloaded").await;
        assert_eq!(hup["level"], "INFO");
        assert_eq!(hup["fields"]["unchanged"], 1, "{hup}");
        let again = ws_first_frame(&addr, &[("origin", "https://good.example")]).await;
        assert_eq!(again["event"], "pusher:connection_established", "{again}");
        child.kill().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
