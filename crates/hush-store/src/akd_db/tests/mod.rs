//! Tests of [`super::AkdDb`] and the epoch heads.

mod directory;
mod heads;
mod measure;
mod semantics;

use std::path::Path;

use akd::storage::types::{DbRecord, ValueState};
use akd::tree_node::{TreeNode, TreeNodeType, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue, AzksValue, NodeLabel};

use crate::{Store, StoreOptions};

/// Opens (creating) the store in `dir`.
async fn open(dir: &Path) -> Store {
    let url = format!("sqlite://{}/hush.sqlite3", dir.display());
    Store::open(&url, &StoreOptions::default()).await.unwrap()
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn label(&mut self) -> NodeLabel {
        let mut v = [0u8; 32];
        v.copy_from_slice(&self.bytes(32));
        NodeLabel::new(v, 1 + self.below(256) as u32)
    }
}

fn state(user: &[u8], epoch: u64, version: u64, value: &[u8]) -> DbRecord {
    DbRecord::ValueState(ValueState {
        value: AkdValue(value.to_vec()),
        version,
        label: NodeLabel::new([version as u8; 32], 256),
        epoch,
        username: AkdLabel(user.to_vec()),
    })
}

fn node(rng: &mut Rng, with_previous: bool) -> DbRecord {
    let label = rng.label();
    let tree_node = |rng: &mut Rng| TreeNode {
        label,
        last_epoch: rng.below(100),
        min_descendant_epoch: rng.below(100),
        parent: rng.label(),
        node_type: TreeNodeType::Interior,
        left_child: Some(rng.label()),
        right_child: (rng.below(2) == 0).then(|| rng.label()),
        hash: AzksValue({
            let mut h = [0u8; 32];
            h.copy_from_slice(&rng.bytes(32));
            h
        }),
    };
    let latest_node = tree_node(rng);
    let previous_node = with_previous.then(|| tree_node(rng));
    DbRecord::TreeNode(TreeNodeWithPreviousValue {
        label,
        latest_node,
        previous_node,
    })
}
