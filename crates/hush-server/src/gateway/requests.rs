//! Running a connection's `hush:request`s against the key directory, each on
//! a task of its own (the directory reads and writes the store), and
//! sending the answers.

use std::sync::Arc;

use hush_protocol::wire;
use tokio::task::AbortHandle;

use crate::conn::{ConnHandle, Frame};
use crate::directory::{DirError, Directory};
use crate::session::DirectoryRequest;

/// One connection's request tasks. Read-only ones are aborted when the
/// connection ends (nobody would read the answers); writes run to the end
/// (see [`DirectoryRequest::read_only`]).
#[derive(Default)]
pub(super) struct Requests(Vec<AbortHandle>);

impl Requests {
    /// Answers `request` from `directory` on a new task.
    pub(super) fn spawn(
        &mut self,
        directory: &Arc<Directory>,
        app_id: &str,
        handle: &ConnHandle,
        request: DirectoryRequest,
    ) {
        let read_only = request.read_only();
        self.0.retain(|t| !t.is_finished());
        let task = tokio::spawn(answer(
            directory.clone(),
            app_id.to_owned(),
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

/// Runs one `hush:request` against `directory` and sends its answer
/// (`hush:response`) to `handle`. Connections run it on a task of its own.
pub async fn answer(
    directory: Arc<Directory>,
    app_id: String,
    handle: ConnHandle,
    request: DirectoryRequest,
) {
    let result = directory
        .respond(&app_id, request.user.as_ref(), &request.request)
        .await;
    let id = &request.request.id;
    let frame = match result {
        Ok(frame) => frame,
        Err(e) => {
            if let DirError::Unavailable(source) = &e {
                tracing::warn!(app = %app_id, error = %source, "key directory request failed");
            }
            wire::hush_response_err(id, e.code().as_str(), &e.to_string())
        }
    };
    // The slot is free before the answer can reach the client.
    request.release_then(|| handle.send(&Frame::from(frame)));
}
