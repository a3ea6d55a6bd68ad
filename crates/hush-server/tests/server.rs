//! Integration tests: the real server, in-process, on an ephemeral loopback port.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "server/api.rs"]
mod api;
#[path = "server/auth.rs"]
mod auth;
#[path = "server/client_events.rs"]
mod client_events;
#[path = "server/connection.rs"]
mod connection;
#[path = "server/data_dir.rs"]
mod data_dir;
#[path = "server/directory.rs"]
mod directory;
#[path = "server/directory_attacks.rs"]
mod directory_attacks;
#[path = "server/fanout.rs"]
mod fanout;
#[path = "server/limits.rs"]
mod limits;
#[path = "server/mailbox.rs"]
mod mailbox;
#[path = "server/presence.rs"]
mod presence;
#[path = "server/users.rs"]
mod users;
#[path = "server/webhooks.rs"]
mod webhooks;
