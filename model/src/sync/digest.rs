//! Per-space digests of document heads.
//!
//! A digest is SHA-256 over the space's documents sorted by id, each as its
//! id, a separator, and its sorted heads. Two replicas holding the same
//! documents at the same heads get the same digest, so a reconnecting node
//! sends one 32-byte value per space instead of the heads of every document.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use crate::docs::{DocId, SpaceId};

/// The digest of one space and how many documents it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceDigest {
    pub space: SpaceId,
    pub digest: [u8; 32],
    pub n_docs: usize,
}

/// The digest of one space's documents. Order of the input does not matter;
/// documents with no heads (empty documents) are skipped, since an empty
/// document and a missing one hold the same data.
pub fn space_digest<'a>(docs: impl IntoIterator<Item = (&'a DocId, &'a [ChangeHash])>) -> [u8; 32] {
    let mut sorted: Vec<(String, Vec<ChangeHash>)> = docs
        .into_iter()
        .filter(|(_, heads)| !heads.is_empty())
        .map(|(id, heads)| {
            let mut heads = heads.to_vec();
            heads.sort();
            (id.to_string(), heads)
        })
        .collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (id, heads) in &sorted {
        hasher.update(id.as_bytes());
        hasher.update([0u8]);
        for head in heads {
            hasher.update(head.0);
        }
        hasher.update([0xffu8]);
    }
    hasher.finalize().into()
}

/// Groups documents by space and digests each space.
pub fn digest_by_space<'a>(
    docs: impl IntoIterator<Item = (&'a DocId, &'a [ChangeHash])>,
) -> Vec<SpaceDigest> {
    let mut by_space: BTreeMap<SpaceId, Vec<(&DocId, &[ChangeHash])>> = BTreeMap::new();
    for (id, heads) in docs {
        by_space.entry(id.space()).or_default().push((id, heads));
    }
    by_space
        .into_iter()
        .map(|(space, docs)| SpaceDigest {
            space,
            n_docs: docs.iter().filter(|(_, h)| !h.is_empty()).count(),
            digest: space_digest(docs),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digest_ignores_order_and_empty_docs_but_not_heads() {
        let a = DocId::parse("catalogue/001").unwrap();
        let b = DocId::parse("catalogue/002").unwrap();
        let e = DocId::parse("catalogue/003").unwrap();
        let h1 = ChangeHash([1; 32]);
        let h2 = ChangeHash([2; 32]);
        let one = space_digest([(&a, &[h1, h2][..]), (&b, &[h2][..])]);
        let two = space_digest([(&b, &[h2][..]), (&a, &[h2, h1][..]), (&e, &[][..])]);
        assert_eq!(one, two);
        let three = space_digest([(&a, &[h1][..]), (&b, &[h2][..])]);
        assert_ne!(one, three);
        let spaces = digest_by_space([
            (&a, &[h1][..]),
            (&DocId::parse("stats/namur").unwrap(), &[h2][..]),
        ]);
        assert_eq!(spaces.len(), 2);
        assert_eq!(spaces[0].space, SpaceId::catalogue());
    }
}
