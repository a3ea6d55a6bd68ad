//! Group commit of `mailbox.send`s: sends that arrive while a transaction is
//! being written wait for the next one and share it, so concurrent senders
//! cost one SQLite commit per batch instead of one each. A lone send is
//! written at once (no added latency).

use std::sync::OnceLock;

use hush_store::mailbox::{DeviceRef, Enqueued, NewMessage, Quota};
use hush_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::directory::DirError;

/// Most sends one transaction takes.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer; beyond it senders wait their turn.
const QUEUE: usize = 4096;

/// A message to queue, owned (it crosses to the writer task).
pub(super) struct Owned {
    pub app_id: String,
    pub message_id: [u8; 16],
    pub sender_user: String,
    pub sender_device: [u8; 16],
    pub envelope: Vec<u8>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub recipients: Vec<DeviceRef>,
}

impl Owned {
    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            app_id: &self.app_id,
            message_id: self.message_id,
            sender_user: &self.sender_user,
            sender_device: self.sender_device,
            envelope: &self.envelope,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            recipients: &self.recipients,
        }
    }
}

type Job = (Owned, Quota, oneshot::Sender<Result<Enqueued, String>>);

/// The writer task's inbox, started on first use.
#[derive(Default)]
pub(super) struct Writer(OnceLock<mpsc::Sender<Job>>);

impl Writer {
    /// Queues `message` in the next group commit.
    pub(super) async fn enqueue(
        &self,
        store: &Store,
        message: Owned,
        quota: Quota,
    ) -> Result<Enqueued, DirError> {
        let tx = self.0.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(store.clone(), rx));
            tx
        });
        let (done, answer) = oneshot::channel();
        tx.send((message, quota, done))
            .await
            .map_err(|_| DirError::Busy("the mailbox writer stopped".into()))?;
        match answer.await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(e)) => Err(DirError::Unavailable(StoreError::Conflict(e))),
            Err(_) => Err(DirError::Busy("the mailbox writer stopped".into())),
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // One quota for the whole node: every job carries the same.
        let quota = jobs[0].1;
        let messages: Vec<NewMessage<'_>> = jobs.iter().map(|(m, _, _)| m.as_new()).collect();
        let result = store.mailbox_enqueue_batch(&messages, quota).await;
        drop(messages);
        match result {
            Ok(out) => {
                for ((_, _, done), e) in jobs.drain(..).zip(out) {
                    let _ = done.send(Ok(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "mailbox write failed");
                let why = e.to_string();
                for (_, _, done) in jobs.drain(..) {
                    let _ = done.send(Err(why.clone()));
                }
            }
        }
    }
}
