//! Helpers shared by the CLI tests: the in-process server and raw client of
//! `hush-testkit`, and running the `hush` binary against a server.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

pub use hush_testkit::*;

/// `http://` and the server's address, as `HUSH_URL`.
pub fn url(srv: &TestServer) -> String {
    format!("http://{}", srv.addr)
}

/// Runs `hush ARGS` against the server at `url` with the test app's
/// credentials in the environment (only those and `extra_env`: inherited
/// `HUSH_*` variables are removed), `stdin` written to its standard input.
/// Bounded by 60 s.
pub async fn hush_with(
    url: &str,
    args: &[&str],
    stdin: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("HUSH_URL", url)
        .env("HUSH_APP_ID", ID)
        .env("HUSH_APP_KEY", KEY)
        .env("HUSH_APP_SECRET", SECRET)
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads `hush serve`'s standard output up to the line `hush listening on
/// ADDR` and returns ADDR (bounded by 20 s).
pub async fn listening_on(
    out: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let l = out.next_line().await.unwrap().expect("stdout ended");
            if let Some(a) = l.strip_prefix("hush listening on ") {
                return a.split_whitespace().next().unwrap_or_default().to_owned();
            }
        }
    })
    .await
    .expect("hush serve did not say where it listens")
}
