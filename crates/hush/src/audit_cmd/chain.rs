//! Verifying the epochs a directory serves through `log.audit`: every head
//! signed by the directory for this app, consecutive epochs, chunks that
//! join (the root an auditor saw for an epoch never changes), and akd's
//! append-only proof between each pair of consecutive epochs.

use akd_core::proto::specs::types as pb;
use hush_crypto::transparency::proofs::AkdConfig;
use hush_crypto::transparency::{Hash, LogError, LogPublicKey};
use hush_sdk::Audit;
use protobuf::Message;

/// An epoch and its root, as audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The epoch.
    pub epoch: u64,
    /// Its root.
    pub root: Hash,
}

/// Why a directory's history cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A head that is not signed by the directory's key for this app.
    #[error("head of epoch {epoch}: {error}")]
    Head {
        /// The epoch the head claims.
        epoch: u64,
        /// Why it was refused.
        error: LogError,
    },
    /// The heads served are not the epochs asked for, in order.
    #[error("the server answered epochs {from}..={to} with heads of epochs {got:?}")]
    Epochs {
        /// First epoch asked for.
        from: u64,
        /// Last epoch asked for.
        to: u64,
        /// The epochs of the heads served.
        got: Vec<u64>,
    },
    /// Another root for an epoch already audited: a rewritten history (or
    /// a different tree shown to this auditor than before).
    #[error(
        "fork: the root of epoch {epoch} changed since it was audited (was {}, now {}): \
         the history was rewritten",
        hex::encode(.audited),
        hex::encode(.served)
    )]
    Fork {
        /// The epoch.
        epoch: u64,
        /// The root audited before.
        audited: Hash,
        /// The root served now.
        served: Hash,
    },
    /// The directory's latest epoch is older than one already audited.
    #[error("rollback: the directory is at epoch {served}, but epoch {audited} was audited")]
    Rollback {
        /// The epoch audited before.
        audited: u64,
        /// The latest epoch served now.
        served: u64,
    },
    /// The append-only proof is malformed, covers other epochs, or does
    /// not verify: epoch `to` does not extend epoch `from`.
    #[error("epochs {from}..={to} are not proven append-only: {reason}")]
    NotAppendOnly {
        /// First epoch of the chunk.
        from: u64,
        /// Last epoch of the chunk.
        to: u64,
        /// What failed.
        reason: String,
    },
}

/// Checks one `log.audit` answer for epochs `from..=to`, continuing from
/// `start` (the audited root of epoch `from`, when known). Returns the
/// checkpoint of epoch `to`.
pub async fn verify_chunk(
    key: &LogPublicKey,
    app_id: &str,
    (from, to): (u64, u64),
    start: Option<&Checkpoint>,
    audit: &Audit,
) -> Result<Checkpoint, Problem> {
    let got: Vec<u64> = audit.heads.iter().map(|h| h.head.epoch).collect();
    if !got.iter().copied().eq(from..=to) {
        return Err(Problem::Epochs { from, to, got });
    }
    for h in &audit.heads {
        h.verify(key, app_id).map_err(|error| Problem::Head {
            epoch: h.head.epoch,
            error,
        })?;
    }
    let roots: Vec<Hash> = audit.heads.iter().map(|h| h.head.root).collect();
    if let Some(start) = start {
        debug_assert_eq!(start.epoch, from);
        if roots.first() != Some(&start.root) {
            return Err(Problem::Fork {
                epoch: from,
                audited: start.root,
                served: roots.first().copied().unwrap_or_default(),
            });
        }
    }
    let not_append_only = |reason: String| Problem::NotAppendOnly { from, to, reason };
    let proof = pb::AppendOnlyProof::parse_from_bytes(&audit.proof)
        .ok()
        .and_then(|p| akd::AppendOnlyProof::try_from(&p).ok())
        .ok_or_else(|| not_append_only("malformed proof".into()))?;
    // akd's verifier takes the epoch of each step from the proof: it must
    // be the steps asked for, or a proof of other epochs could pass.
    if !proof.epochs.iter().copied().eq(from..to) {
        return Err(not_append_only(format!(
            "the proof covers steps from epochs {:?}",
            proof.epochs
        )));
    }
    akd::auditor::audit_verify::<AkdConfig>(roots.clone(), proof)
        .await
        .map_err(|e| not_append_only(e.to_string()))?;
    Ok(Checkpoint {
        epoch: to,
        root: roots.last().copied().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
