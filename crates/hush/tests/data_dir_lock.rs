//! `hush serve` twice on one data directory: the second exits at once with
//! an error naming the directory and the first server's process; once the
//! first is gone (even by SIGKILL), the directory serves again.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn serve(dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn a_second_hush_serve_on_a_data_directory_exits_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path()).spawn().unwrap();
    let mut out = BufReader::new(first.stdout.take().unwrap()).lines();
    common::listening_on(&mut out).await;
    let pid = first.id().unwrap();

    let second = tokio::time::timeout(Duration::from_secs(60), serve(dir.path()).output())
        .await
        .expect("the second server exits by itself")
        .unwrap();
    assert!(!second.status.success());
    let err = common::stderr(&second);
    let data = dir.path().join("hush-data").canonicalize().unwrap();
    assert!(err.contains("is in use by another hush server"), "{err}");
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(err.contains(&format!("process {pid}")), "{err}");

    // Killed without a chance to clean up: the kernel drops the lock.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let mut third = serve(dir.path()).spawn().unwrap();
    let mut out = BufReader::new(third.stdout.take().unwrap()).lines();
    common::listening_on(&mut out).await;
    third.start_kill().unwrap();
    third.wait().await.unwrap();
}
