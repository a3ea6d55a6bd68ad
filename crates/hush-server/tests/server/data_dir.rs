//! One server per SQLite data directory: a second one is refused with an
//! error that names the directory and the process holding it.

use hush_testkit::app_toml;

fn config(data_dir: &std::path::Path, extra: &str) -> hush_server::Config {
    let toml = format!(
        "[server]\nhost = '127.0.0.1'\nport = 0\nshutdown_timeout = 1\ndata_dir = '{}'\n{extra}\n{}",
        data_dir.display(),
        app_toml("")
    );
    hush_server::Config::from_toml(&toml).unwrap()
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_is_refused_until_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let first = hush_server::Server::bind(config(dir.path(), ""))
        .await
        .unwrap();
    let refused = hush_server::Server::bind(config(dir.path(), ""))
        .await
        .err()
        .expect("a second server on the same directory is refused");
    let msg = refused.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("process {}", std::process::id())),
        "{msg}"
    );
    // The same database named through store.url, from another data_dir.
    let other = tempfile::tempdir().unwrap();
    let url = format!(
        "[store]\nurl = 'sqlite://{}/hush.sqlite3'",
        dir.path().display()
    );
    assert!(
        hush_server::Server::bind(config(other.path(), &url))
            .await
            .is_err()
    );
    // Another directory is no trouble.
    let beside = hush_server::Server::bind(config(other.path(), ""))
        .await
        .unwrap();
    drop(beside);
    // Once the first has stopped, its directory is free.
    first.spawn().stop().await.unwrap();
    let next = hush_server::Server::bind(config(dir.path(), ""))
        .await
        .unwrap();
    next.spawn().stop().await.unwrap();
}
