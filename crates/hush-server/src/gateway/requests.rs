//! Running a connection's `hush:request`s against the key directory and the
//! mailbox, each on a task of its own (both read and write the store), and
//! sending the answers.

use std::sync::Arc;

use hush_protocol::msgs::{HushRequest, Method};
use hush_protocol::wire;
use tokio::task::AbortHandle;

use crate::app::{App, ServerState};
use crate::conn::{ConnHandle, Frame};
use crate::directory::{DirError, Directory};
use crate::mailbox::{Caller, Mailbox};
use crate::session::DirectoryRequest;

/// One connection's request tasks. Read-only ones are aborted when the
/// connection ends (nobody would read the answers); writes run to the end
/// (see [`DirectoryRequest::read_only`]).
#[derive(Default)]
pub(super) struct Requests(Vec<AbortHandle>);

impl Requests {
    /// Answers `request` on a new task.
    pub(super) fn spawn(
        &mut self,
        state: &ServerState,
        app: &App,
        handle: &ConnHandle,
        request: DirectoryRequest,
    ) {
        let read_only = request.read_only();
        self.0.retain(|t| !t.is_finished());
        let task = tokio::spawn(answer(
            state.directory.clone(),
            state.mailbox.clone(),
            AppInfo {
                id: app.config.id.clone(),
                key: app.config.key.clone(),
                ttl_secs: app.config.mailbox_ttl_secs,
            },
            handle.clone(),
            request,
        ));
        if read_only {
            self.0.push(task.abort_handle());
        }
    }

    /// Aborts the read-only tasks still running.
    pub(super) fn abort_all(&mut self) {
        for task in self.0.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.abort_all();
    }
}

/// What a request needs of its app.
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// The app's id.
    pub id: String,
    /// The app's key.
    pub key: String,
    /// Its mailbox TTL (seconds).
    pub ttl_secs: u64,
}

/// Runs one `hush:request` against the key directory or the mailbox and
/// sends its answer (`hush:response`) to `handle`. Connections run it on a
/// task of its own. A revocation also purges the revoked devices' mailbox.
pub async fn answer(
    directory: Arc<Directory>,
    mailbox: Arc<Mailbox>,
    app: AppInfo,
    handle: ConnHandle,
    request: DirectoryRequest,
) {
    let mailbox_method = request
        .request
        .known_method()
        .is_some_and(Method::is_mailbox);
    let result = if mailbox_method {
        respond_mailbox(&mailbox, &app, &handle, &request).await
    } else {
        let r = directory
            .respond(&app.id, request.user.as_ref(), &request.request)
            .await;
        if r.is_ok()
            && request.request.known_method() == Some(Method::DirectoryRevoke)
            && let Some(user) = &request.user
            && let Err(e) = mailbox.revoked(&app.id, user).await
        {
            tracing::warn!(app = %app.id, error = %e, "mailbox purge after a revocation failed");
        }
        r
    };
    let id = &request.request.id;
    let frame = match result {
        Ok(frame) => frame,
        Err(e) => {
            if let DirError::Unavailable(source) = &e {
                tracing::warn!(app = %app.id, error = %source, "hush request failed");
            }
            wire::hush_response_err(id, e.code().as_str(), &e.to_string())
        }
    };
    // The slot is free before the answer can reach the client.
    request.release_then(|| handle.send(&Frame::from(frame)));
}

async fn respond_mailbox(
    mailbox: &Mailbox,
    app: &AppInfo,
    handle: &ConnHandle,
    request: &DirectoryRequest,
) -> Result<String, DirError> {
    let parsed = HushRequest::from_frame(&request.request).map_err(|e| match e.code {
        hush_protocol::msgs::ErrorCode::UnknownMethod => DirError::UnknownMethod(e.message),
        _ => DirError::BadRequest(e.message),
    })?;
    let user = request.user.as_ref().ok_or(DirError::NotSignedIn)?;
    let caller = Caller {
        app_id: &app.id,
        app_key: &app.key,
        ttl_secs: app.ttl_secs,
        user,
        handle,
        device: &request.device,
    };
    let value = mailbox.dispatch(&caller, parsed).await?;
    Ok(wire::hush_response_ok(&request.request.id, &value.encode()))
}
