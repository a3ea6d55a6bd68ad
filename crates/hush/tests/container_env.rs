//! `hush serve` as the container image runs it: configured by environment
//! variables alone (the Dockerfile's `ENV` plus the operator's `HUSH_*`),
//! numeric ids accepted, misspelt variables named once, the development
//! app refused on the image's 0.0.0.0, and text logs without colours when
//! stderr is not a terminal.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);

/// The `HUSH_*` variables of the Dockerfile's `ENV` instructions.
fn dockerfile_env() -> Vec<(String, String)> {
    let text = include_str!("../../../Dockerfile");
    let mut out = Vec::new();
    let mut in_env = false;
    for line in text.lines() {
        let l = line.trim();
        let body = if let Some(rest) = l.strip_prefix("ENV ") {
            rest
        } else if in_env {
            l
        } else {
            continue;
        };
        for token in body.trim_end_matches('\\').split_whitespace() {
            if let Some((k, v)) = token.split_once('=') {
                if k.starts_with("HUSH_") {
                    out.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        in_env = l.ends_with('\\');
    }
    assert!(
        out.iter()
            .any(|(k, v)| k == "HUSH_SERVER__HOST" && v == "0.0.0.0"),
        "{out:?}"
    );
    out
}

/// `hush serve ARGS` in an empty directory with the Dockerfile's variables
/// (data directory moved to `dir`) and `extra`; nothing else named HUSH_*.
fn serve(dir: &std::path::Path, args: &[&str], extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in dockerfile_env() {
        cmd.env(k, v);
    }
    cmd.env("HUSH_SERVER__DATA_DIR", dir.join("data"))
        .envs(extra.iter().copied())
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_image_runs_on_environment_variables_alone() {
    let dir = tempfile::tempdir().unwrap();
    let app = [
        ("HUSH_APPS__MAIN__ID", "412001"),
        ("HUSH_APPS__MAIN__KEY", "7c5f3e9a1b"),
        ("HUSH_APPS__MAIN__SECRET", "0d1e2f3a4b5c"),
        ("HUSH_APPS__MAIN__CLIENT_EVENTS", "true"),
        ("HUSH_LOG", "info"),
    ];
    // Loopback and any port for the test; everything else as in the image.
    let mut child = serve(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &app)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = common::listening_on(&mut out).await;
    let o = hush_with(
        &format!("http://{addr}"),
        &[
            "trigger",
            "--channel",
            "news",
            "--event",
            "e",
            "--data",
            "1",
        ],
        None,
        &[
            ("HUSH_APP_ID", "412001"),
            ("HUSH_APP_KEY", "7c5f3e9a1b"),
            ("HUSH_APP_SECRET", "0d1e2f3a4b5c"),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("data/hush.sqlite3").exists());
    child.start_kill().unwrap();
    let mut logs = String::new();
    let mut err = child.stderr.take().unwrap();
    let _ = tokio::time::timeout(WAIT, err.read_to_string(&mut logs)).await;
    assert!(logs.contains("hush started"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in logs to a pipe: {logs:?}"
    );
}

#[tokio::test]
async fn the_development_app_is_refused_on_the_image_host() {
    let dir = tempfile::tempdir().unwrap();
    let o = serve(dir.path(), &["--port", "0"], &[])
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.matches("--allow-dev-app").count(), 1, "{e}");
    assert!(
        e.contains("0.0.0.0") && e.contains("HUSH_APPS__MAIN__ID"),
        "{e}"
    );
    assert!(o.stdout.is_empty(), "it must not have started");
}

#[tokio::test]
async fn a_misspelt_variable_is_an_error_said_once() {
    let dir = tempfile::tempdir().unwrap();
    for (var, needle) in [
        ("HUSH_SEVRER__PORT", "HUSH_SEVRER__PORT"),
        ("HUSH_SERVER__PROT", "unknown field"),
        ("HUSH_SERVER_PORT", "HUSH_SERVER_PORT"),
    ] {
        let o = serve(
            dir.path(),
            &["--host", "127.0.0.1", "--port", "0"],
            &[(var, "7000")],
        )
        .output()
        .await
        .unwrap();
        assert!(!o.status.success(), "{var} accepted");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(var), "{var}: {e}");
        assert_eq!(
            e.matches(needle).count(),
            1,
            "{var} said more than once: {e}"
        );
    }
}
