//! hush's compact binary encoding of akd's `Azks` and tree-node records.
//!
//! akd only offers serde (its `serde_serialization` feature) for these types;
//! a hand-written format keeps the rows small and the dependency list short.
//! Integers are LEB128 varints (epochs and label lengths are small), labels
//! are `varint(len) || 32 bytes`, hashes are 32 bytes. A tree node's own
//! label is not stored when it equals the record key (always, in akd), so a
//! node costs about 110 bytes, 220 with its previous state.
//!
//! Decoding is strict: unknown format or node type, truncation, overlong
//! varints and trailing bytes are errors, never a guess.

use akd::tree_node::{TreeNode, TreeNodeType, TreeNodeWithPreviousValue};
use akd::{Azks, AzksValue, NodeLabel};

/// The first byte of every encoded record.
const FORMAT: u8 = 1;
/// Record flag: a previous node state follows the latest one.
const HAS_PREVIOUS: u8 = 1;
/// Node flag: the node's label differs from the record key and is stored.
const OWN_LABEL: u8 = 1;
/// Node flag: a left child label is stored.
const LEFT: u8 = 2;
/// Node flag: a right child label is stored.
const RIGHT: u8 = 4;

/// A stored record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable akd record: {0}")]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// Encodes an `Azks` record.
pub(crate) fn encode_azks(azks: &Azks) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * 10);
    out.push(FORMAT);
    put_varint(&mut out, azks.latest_epoch);
    put_varint(&mut out, azks.num_nodes);
    out
}

/// Decodes an `Azks` record.
pub(crate) fn decode_azks(bytes: &[u8]) -> Result<Azks, DecodeError> {
    let mut r = Reader(bytes);
    r.format()?;
    let azks = Azks {
        latest_epoch: r.varint()?,
        num_nodes: r.varint()?,
    };
    r.finish()?;
    Ok(azks)
}

/// Encodes a tree-node record (stored under the key of `node.label`).
pub(crate) fn encode_node(node: &TreeNodeWithPreviousValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * 120);
    out.push(FORMAT);
    out.push(if node.previous_node.is_some() {
        HAS_PREVIOUS
    } else {
        0
    });
    put_node(&mut out, &node.label, &node.latest_node);
    if let Some(previous) = &node.previous_node {
        put_node(&mut out, &node.label, previous);
    }
    out
}

/// Decodes a tree-node record stored under the key of `label`.
pub(crate) fn decode_node(
    label: NodeLabel,
    bytes: &[u8],
) -> Result<TreeNodeWithPreviousValue, DecodeError> {
    let mut r = Reader(bytes);
    r.format()?;
    let flags = r.u8()?;
    if flags & !HAS_PREVIOUS != 0 {
        return Err(DecodeError("unknown record flags"));
    }
    let latest_node = r.node(label)?;
    let previous_node = if flags & HAS_PREVIOUS != 0 {
        Some(r.node(label)?)
    } else {
        None
    };
    r.finish()?;
    Ok(TreeNodeWithPreviousValue {
        label,
        latest_node,
        previous_node,
    })
}

fn put_node(out: &mut Vec<u8>, key: &NodeLabel, node: &TreeNode) {
    let mut flags = 0;
    if node.label != *key {
        flags |= OWN_LABEL;
    }
    if node.left_child.is_some() {
        flags |= LEFT;
    }
    if node.right_child.is_some() {
        flags |= RIGHT;
    }
    out.push(flags);
    if node.label != *key {
        put_label(out, &node.label);
    }
    put_varint(out, node.last_epoch);
    put_varint(out, node.min_descendant_epoch);
    put_label(out, &node.parent);
    out.push(node_type_code(node.node_type));
    for child in [&node.left_child, &node.right_child].into_iter().flatten() {
        put_label(out, child);
    }
    out.extend_from_slice(&node.hash.0);
}

fn node_type_code(t: TreeNodeType) -> u8 {
    match t {
        TreeNodeType::Leaf => 1,
        TreeNodeType::Root => 2,
        TreeNodeType::Interior => 3,
    }
}

fn put_label(out: &mut Vec<u8>, label: &NodeLabel) {
    put_varint(out, u64::from(label.label_len));
    out.extend_from_slice(&label.label_val);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // Truncation intended: the low 7 bits, with the continuation bit.
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The unread rest of an encoded record.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn format(&mut self) -> Result<(), DecodeError> {
        match self.u8()? {
            FORMAT => Ok(()),
            _ => Err(DecodeError("unknown format")),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && bits > 1 {
                return Err(DecodeError("varint overflow"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError("overlong varint"));
                }
                return Ok(v);
            }
        }
        Err(DecodeError("varint overflow"))
    }

    fn label(&mut self) -> Result<NodeLabel, DecodeError> {
        let len = u32::try_from(self.varint()?).map_err(|_| DecodeError("label length"))?;
        Ok(NodeLabel::new(self.take::<32>()?, len))
    }

    fn node(&mut self, key: NodeLabel) -> Result<TreeNode, DecodeError> {
        let flags = self.u8()?;
        if flags & !(OWN_LABEL | LEFT | RIGHT) != 0 {
            return Err(DecodeError("unknown node flags"));
        }
        let label = if flags & OWN_LABEL != 0 {
            self.label()?
        } else {
            key
        };
        let last_epoch = self.varint()?;
        let min_descendant_epoch = self.varint()?;
        let parent = self.label()?;
        let node_type = match self.u8()? {
            1 => TreeNodeType::Leaf,
            2 => TreeNodeType::Root,
            3 => TreeNodeType::Interior,
            _ => return Err(DecodeError("unknown node type")),
        };
        let left_child = if flags & LEFT != 0 {
            Some(self.label()?)
        } else {
            None
        };
        let right_child = if flags & RIGHT != 0 {
            Some(self.label()?)
        } else {
            None
        };
        let hash = AzksValue(self.take::<32>()?);
        Ok(TreeNode {
            label,
            last_epoch,
            min_descendant_epoch,
            parent,
            node_type,
            left_child,
            right_child,
            hash,
        })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn label() -> impl Strategy<Value = NodeLabel> {
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(v, l)| NodeLabel::new(v, l))
    }

    fn node(key: NodeLabel) -> impl Strategy<Value = TreeNode> {
        (
            (prop::bool::ANY, label()),
            any::<u64>(),
            any::<u64>(),
            label(),
            0..3u8,
            prop::option::of(label()),
            prop::option::of(label()),
            any::<[u8; 32]>(),
        )
            .prop_map(move |((own, l), last, min, parent, t, left, right, hash)| {
                TreeNode {
                    label: if own { l } else { key },
                    last_epoch: last,
                    min_descendant_epoch: min,
                    parent,
                    node_type: [
                        TreeNodeType::Leaf,
                        TreeNodeType::Root,
                        TreeNodeType::Interior,
                    ][usize::from(t)],
                    left_child: left,
                    right_child: right,
                    hash: AzksValue(hash),
                }
            })
    }

    fn record() -> impl Strategy<Value = TreeNodeWithPreviousValue> {
        label().prop_flat_map(|key| {
            (node(key), prop::option::of(node(key))).prop_map(move |(latest, previous)| {
                TreeNodeWithPreviousValue {
                    label: key,
                    latest_node: latest,
                    previous_node: previous,
                }
            })
        })
    }

    proptest! {
        #[test]
        fn nodes_round_trip(rec in record()) {
            let bytes = encode_node(&rec);
            prop_assert_eq!(decode_node(rec.label, &bytes), Ok(rec));
        }

        #[test]
        fn azks_round_trips(latest_epoch in any::<u64>(), num_nodes in any::<u64>()) {
            let azks = Azks { latest_epoch, num_nodes };
            let back = decode_azks(&encode_azks(&azks)).map(|a| (a.latest_epoch, a.num_nodes));
            prop_assert_eq!(back, Ok((latest_epoch, num_nodes)));
        }

        /// A corrupted row is an error (or decodes to some node), never a panic.
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_node(NodeLabel::root(), &bytes);
            let _ = decode_azks(&bytes);
        }

        /// Cutting a record short or extending it is always detected.
        #[test]
        fn truncation_and_trailing_bytes_are_errors(rec in record(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_node(&rec);
            let n = cut.index(bytes.len());
            prop_assert!(decode_node(rec.label, &bytes[..n]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(decode_node(rec.label, &longer), Err(DecodeError("trailing bytes")));
        }
    }

    #[test]
    fn varints_are_canonical() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Reader(&out).varint(), Ok(v));
        }
        assert_eq!(
            Reader(&[0x80, 0x00]).varint(),
            Err(DecodeError("overlong varint"))
        );
        let eleven = [0xff; 11];
        assert!(Reader(&eleven).varint().is_err());
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader(&too_big).varint(),
            Err(DecodeError("varint overflow"))
        );
    }

    #[test]
    fn unknown_node_type_is_refused_not_read_as_a_leaf() {
        let key = NodeLabel::root();
        let rec = TreeNodeWithPreviousValue {
            label: key,
            latest_node: TreeNode {
                label: key,
                last_epoch: 1,
                min_descendant_epoch: 1,
                parent: key,
                node_type: TreeNodeType::Root,
                left_child: None,
                right_child: None,
                hash: AzksValue([7; 32]),
            },
            previous_node: None,
        };
        let mut bytes = encode_node(&rec);
        // format, record flags, node flags, last, min, parent (1 + 32): type.
        let type_at = 3 + 1 + 1 + 1 + 32;
        assert_eq!(bytes[type_at], 2);
        bytes[type_at] = 9;
        assert_eq!(
            decode_node(key, &bytes),
            Err(DecodeError("unknown node type"))
        );
    }
}
