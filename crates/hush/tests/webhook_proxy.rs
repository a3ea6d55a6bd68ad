//! `hush serve` sends webhooks through the proxies of the standard
//! environment variables: an `https://` endpoint through a CONNECT tunnel
//! (TLS end to end, trusted through `webhooks.ca_file`), an `http://`
//! endpoint as an absolute-form request to the proxy, and a `NO_PROXY` host
//! directly. The proxy is a tiny one on loopback that records what it saw.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);
/// `Basic base64("hook:pw")`.
const PROXY_AUTH: &str = "Basic aG9vazpwdw==";

/// Reads an HTTP head (up to the blank line, at most 16 KiB); the head and
/// any bytes read past it.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        assert!(buf.len() < 16 * 1024, "head too long");
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the head ended");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A forward proxy on 127.0.0.1: reports each request line and whether it
/// carried the expected `Proxy-Authorization`, then tunnels (CONNECT) or
/// forwards (absolute form) to loopback targets only.
async fn proxy(seen: mpsc::UnboundedSender<(String, bool)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = l.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let (head, rest) = read_head(&mut client).await;
                let line = head.lines().next().unwrap_or("").to_owned();
                let authed = header(&head, "proxy-authorization") == Some(PROXY_AUTH);
                let _ = seen.send((line.clone(), authed));
                let mut parts = line.split(' ');
                let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
                let authority = if method == "CONNECT" {
                    target.to_owned()
                } else {
                    target
                        .strip_prefix("http://")
                        .and_then(|t| t.split('/').next())
                        .unwrap_or("")
                        .to_owned()
                };
                let host = authority.rsplit_once(':').map_or("", |h| h.0);
                assert!(
                    ["127.0.0.1", "localhost"].contains(&host),
                    "proxy asked for {authority}"
                );
                let mut upstream = TcpStream::connect(&authority).await.unwrap();
                if method == "CONNECT" {
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                } else {
                    upstream.write_all(head.as_bytes()).await.unwrap();
                }
                upstream.write_all(&rest).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    port
}

/// Answers every request with 200 and reports its request line and body.
async fn answer<S>(mut s: S, got: mpsc::UnboundedSender<(String, String)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (head, mut body) = read_head(&mut s).await;
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }
    let line = head.lines().next().unwrap_or("").to_owned();
    let _ = got.send((line, String::from_utf8_lossy(&body).into_owned()));
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    let _ = s.shutdown().await;
}

/// A plain HTTP receiver on `ip`; its port.
async fn http_receiver(ip: &str, got: mpsc::UnboundedSender<(String, String)>) -> u16 {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(answer(s, got.clone()));
        }
    });
    port
}

/// A TLS receiver for `localhost` with a certificate made here (written to
/// `ca`); its port.
async fn https_receiver(ca: &std::path::Path, got: mpsc::UnboundedSender<(String, String)>) -> u16 {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(ca, made.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, got) = (acceptor.clone(), got.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    answer(tls, got).await;
                }
            });
        }
    });
    port
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing for {what}"))
        .unwrap()
}

#[tokio::test]
async fn webhooks_follow_https_proxy_http_proxy_and_no_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let proxy_port = proxy(seen_tx).await;
    let (tls_tx, mut tls_got) = mpsc::unbounded_channel();
    let tls_port = https_receiver(&ca, tls_tx).await;
    let (http_tx, mut http_got) = mpsc::unbounded_channel();
    let http_port = http_receiver("127.0.0.1", http_tx).await;
    let (direct_tx, mut direct_got) = mpsc::unbounded_channel();
    let direct_port = http_receiver("127.0.0.2", direct_tx).await;

    let config = dir.path().join("hush.toml");
    let hook = |url: String, ch: &str| {
        format!(
            "[[apps.main.webhooks]]\nurl = '{url}'\nevent_types = ['channel_occupied']\nchannel_prefix = '{ch}'\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = '{}'\n[webhooks]\nca_file = '{}'\nbatch_window_ms = 10\n{}{}{}{}",
            dir.path().join("data").display(),
            ca.display(),
            app_toml(""),
            hook(format!("https://localhost:{tls_port}/hooks"), "tls-"),
            hook(format!("http://127.0.0.1:{http_port}/hooks"), "http-"),
            hook(format!("http://127.0.0.2:{direct_port}/hooks"), "direct-"),
        ),
    )
    .unwrap();
    let proxy_url = format!("http://hook:pw@127.0.0.1:{proxy_port}");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        let lower = k.to_ascii_lowercase();
        if k.starts_with("HUSH_") || lower.ends_with("_proxy") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .env("HTTPS_PROXY", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("NO_PROXY", "127.0.0.2,example.invalid")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = common::listening_on(&mut out).await;
    let addr = addr
        .trim_start_matches("ws://")
        .trim_start_matches("http://");
    let mut c = Client::connect(&format!("ws://{addr}/app/{KEY}?protocol=7")).await;
    c.established().await;

    // https:// endpoint: a CONNECT tunnel with the proxy's credentials; the
    // proxy sees only host and port, the receiver a normal TLS request.
    c.subscribe_ok("tls-a").await;
    let (line, authed) = recv(&mut seen, "the https request at the proxy").await;
    assert_eq!(line, format!("CONNECT localhost:{tls_port} HTTP/1.1"));
    assert!(authed, "CONNECT without Proxy-Authorization");
    let (line, body) = recv(&mut tls_got, "the https receiver").await;
    assert_eq!(line, "POST /hooks HTTP/1.1");
    assert!(body.contains(r#""channel":"tls-a""#), "{body}");

    // http:// endpoint: the request goes to the proxy in absolute form.
    c.subscribe_ok("http-b").await;
    let (line, authed) = recv(&mut seen, "the http request at the proxy").await;
    assert_eq!(
        line,
        format!("POST http://127.0.0.1:{http_port}/hooks HTTP/1.1")
    );
    assert!(authed, "absolute-form request without Proxy-Authorization");
    let (_, body) = recv(&mut http_got, "the http receiver").await;
    assert!(body.contains(r#""channel":"http-b""#), "{body}");

    // NO_PROXY: straight to the receiver, the proxy sees nothing.
    c.subscribe_ok("direct-c").await;
    let (line, body) = recv(&mut direct_got, "the NO_PROXY receiver").await;
    assert_eq!(line, "POST /hooks HTTP/1.1");
    assert!(body.contains(r#""channel":"direct-c""#), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.try_recv().is_err(), "the proxy saw a NO_PROXY request");
    let _ = child.kill().await;
}
