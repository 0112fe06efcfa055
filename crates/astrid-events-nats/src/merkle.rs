//! The hash tree one signature covers: a batch of messages signed at once.
//!
//! An exporter signs what it sends together (up to [`MAX_LEAVES`] messages)
//! with one ed25519 signature over the root of a binary hash tree whose
//! leaves are the messages' digests (see [`sign`](crate::sign) for what a
//! leaf covers). Each message carries the signature and its inclusion proof:
//! its index, the number of leaves and the sibling hashes from its leaf up
//! to the root, so it verifies on its own, whatever else of the batch an
//! importer receives.
//!
//! The tree is the one of RFC 9162 (section 2.1.1) with SHA-256: a leaf
//! hash is `SHA-256(0x00 || leaf)`, an interior node `SHA-256(0x01 || left ||
//! right)`, and a tree of `n > 1` leaves splits at the largest power of two
//! below `n`. The distinct prefixes keep a leaf from passing for a node.
//! Proofs are built and checked as in RFC 9162 sections 2.1.3.1 and 2.1.3.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Most leaves (messages) under one signature.
pub const MAX_LEAVES: usize = 32;

/// Most sibling hashes in a proof (the tree's depth at [`MAX_LEAVES`]).
pub const MAX_PROOF_LEN: usize = MAX_LEAVES.ilog2() as usize;

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The sibling hashes from a leaf up to the root, lowest first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Path {
    hashes: [Hash; MAX_PROOF_LEN],
    len: usize,
}

impl Default for Path {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::fmt::Debug for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Path({} hashes)", self.len)
    }
}

impl Path {
    /// The path of a tree of one leaf.
    pub const EMPTY: Self = Self {
        hashes: [[0; 32]; MAX_PROOF_LEN],
        len: 0,
    };

    /// The hashes, lowest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes[..self.len]
    }

    /// A path of `hashes` (lowest first); `None` if longer than
    /// [`MAX_PROOF_LEN`].
    pub fn from_hashes(hashes: &[Hash]) -> Option<Self> {
        let mut p = Self::default();
        for h in hashes {
            p.push(*h)?;
        }
        Some(p)
    }

    fn push(&mut self, h: Hash) -> Option<()> {
        *self.hashes.get_mut(self.len)? = h;
        self.len += 1;
        Some(())
    }
}

/// The root of the tree over `leaves` (1..=[`MAX_LEAVES`] leaf digests) and
/// each leaf's path, in `paths` (same length as `leaves`, cleared first).
///
/// # Panics
/// If `leaves` is empty, longer than [`MAX_LEAVES`], or `paths` has another
/// length (a caller's bug, never remote input).
pub fn build(leaves: &[Hash], paths: &mut [Path]) -> Hash {
    assert!(
        (1..=MAX_LEAVES).contains(&leaves.len()) && paths.len() == leaves.len(),
        "merkle::build: 1..={MAX_LEAVES} leaves, one path each"
    );
    for p in paths.iter_mut() {
        p.len = 0;
    }
    subtree(leaves, paths)
}

/// RFC 9162 `MTH` of `leaves`, appending each leaf's sibling at every level
/// to its path (lower levels first, as the recursion returns).
fn subtree(leaves: &[Hash], paths: &mut [Path]) -> Hash {
    if let [leaf] = leaves {
        return leaf_hash(leaf);
    }
    // Largest power of two below the length (length >= 2).
    let k = 1 << (leaves.len() - 1).ilog2();
    let (lp, rp) = paths.split_at_mut(k);
    let left = subtree(&leaves[..k], lp);
    let right = subtree(&leaves[k..], rp);
    // Depth <= MAX_PROOF_LEN, so a push never overflows.
    for p in lp {
        let _ = p.push(right);
    }
    for p in rp {
        let _ = p.push(left);
    }
    node_hash(&left, &right)
}

/// The root that `leaf` at `index` of a tree of `size` leaves leads to along
/// `path` (RFC 9162 section 2.1.3.2); `None` if the path does not have the
/// shape such a tree gives (wrong length, index out of range).
pub fn root_from_path(leaf: &Hash, index: usize, size: usize, path: &Path) -> Option<Hash> {
    if index >= size || size > MAX_LEAVES {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in path.hashes() {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let mut h = [0; 32];
                h[0] = i as u8;
                h[31] = 0xa5;
                h
            })
            .collect()
    }

    /// RFC 9162 `MTH`, written from the definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaf_hash(&leaves[0]);
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
    }

    #[test]
    fn every_leaf_of_every_size_proves_the_root() {
        for n in 1..=MAX_LEAVES {
            let ls = leaves(n);
            let mut paths = vec![Path::default(); n];
            let root = build(&ls, &mut paths);
            assert_eq!(root, reference_root(&ls), "size {n}");
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(root_from_path(&ls[i], i, n, p), Some(root), "{i}/{n}");
            }
        }
    }

    #[test]
    fn a_proof_for_anything_else_does_not_lead_to_the_root() {
        for n in 1..=MAX_LEAVES {
            let ls = leaves(n);
            let mut paths = vec![Path::default(); n];
            let root = build(&ls, &mut paths);
            for (i, p) in paths.iter().enumerate() {
                let ok = |leaf: &Hash, index: usize, size: usize, path: &Path| {
                    root_from_path(leaf, index, size, path) == Some(root)
                };
                // Another leaf or index.
                let mut other = ls[i];
                other[5] ^= 1;
                assert!(!ok(&other, i, n, p));
                for j in (0..n).filter(|&j| j != i) {
                    assert!(!ok(&ls[i], j, n, p), "{i} as {j} of {n}");
                    assert!(!ok(&ls[j], i, n, p), "leaf {j} on {i}'s path");
                }
                // (The same path may lead to the same root under another
                // size: the signature covers the size, see `sign`.)
                assert_eq!(root_from_path(&ls[i], n, n, p), None);
                // A changed, missing or extra hash.
                for k in 0..p.len {
                    let mut q = *p;
                    q.hashes[k][0] ^= 1;
                    assert!(!ok(&ls[i], i, n, &q));
                }
                if p.len > 0 {
                    let short = Path::from_hashes(&p.hashes()[..p.len - 1]).unwrap();
                    assert!(!ok(&ls[i], i, n, &short));
                }
                if p.len < MAX_PROOF_LEN {
                    let mut long = *p;
                    long.push(root).unwrap();
                    assert!(!ok(&ls[i], i, n, &long));
                }
                // An interior node does not pass for a leaf.
                if n > 1 {
                    let mut up = Path::default();
                    for h in &p.hashes()[1..] {
                        up.push(*h).unwrap();
                    }
                    let sibling = p.hashes()[0];
                    let node = if i % 2 == 1 || i + 1 == n {
                        node_hash(&sibling, &leaf_hash(&ls[i]))
                    } else {
                        node_hash(&leaf_hash(&ls[i]), &sibling)
                    };
                    for j in 0..n {
                        assert!(!ok(&node, j, n, &up));
                    }
                    for m in 1..=MAX_LEAVES {
                        assert!(!ok(&node, i / 2, m, &up));
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_is_refused() {
        let p = Path::default();
        assert_eq!(root_from_path(&[0; 32], 0, 0, &p), None);
        assert_eq!(root_from_path(&[0; 32], 0, MAX_LEAVES + 1, &p), None);
        assert!(Path::from_hashes(&[[0; 32]; MAX_PROOF_LEN + 1]).is_none());
    }
}
