//! The per-document sync state machine: one [`DocPeer`] per (session,
//! document), wrapping Automerge's `sync::State`.
//!
//! The document itself is passed in by the caller on every event rather than
//! owned, because at the hub one document is shared by the sessions of every
//! connected node while each session keeps its own sync state.
//!
//! Incoming changes pass a [`ChangeGate`] one by one, each checked against
//! the document as it stands with the earlier changes of the same message
//! applied, on a staged copy. Only when every change passes is the copy
//! swapped in: a refused message leaves both the document and the sync state
//! exactly as they were.
//!
//! A change whose dependencies the document lacks is *held*, never refused
//! for that reason: Automerge's protocol summarises what a peer has with a
//! Bloom filter, and a false positive makes the sender skip a change while
//! still sending the changes that depend on it. The held changes stay in the
//! [`DocPeer`] (never in the document, where Automerge would apply them later
//! without the gate), the next message asks for their missing dependencies
//! (`need`), and they pass the gate in causal order once those arrive. What
//! may be held is bounded: [`MAX_HELD_BYTES`] per document and session, and
//! [`MAX_HELD_ROUNDS`] received messages without the dependency arriving,
//! after which they are dropped and the peer is asked to send again from
//! scratch (a sync reset).

use std::collections::{BTreeMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, AutomergeError, Change, ChangeHash};

/// Most bytes of changes one [`DocPeer`] holds while their dependencies are
/// on their way; a message that would hold more is refused
/// ([`SyncError::HeldTooLarge`]). Below the hub's document limit (48 MiB):
/// an honest peer holds a few changes for one round trip.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// How many received messages a held change may wait for its dependencies
/// before it is dropped and the peer asked to start over (the dependency
/// is asked for in the very next message, so an honest peer answers in one).
pub const MAX_HELD_ROUNDS: u32 = 8;

/// Decides whether one incoming change may be merged. `before` is the
/// document with every earlier change of the same message applied.
pub trait ChangeGate {
    fn check(&mut self, before: &Automerge, change: &Change) -> Result<(), String>;

    /// Called with the change applied to the staged copy, right after
    /// [`Self::check`] passed: rules on what the change leaves (a record's
    /// content). A refusal here refuses the message like one from `check`.
    fn check_applied(&mut self, _after: &Automerge, _change: &Change) -> Result<(), String> {
        Ok(())
    }
}

impl<F> ChangeGate for F
where
    F: FnMut(&Automerge, &Change) -> Result<(), String>,
{
    fn check(&mut self, before: &Automerge, change: &Change) -> Result<(), String> {
        self(before, change)
    }
}

/// Accepts every change: for the node, which trusts what the hub validated.
pub fn accept_all(_: &Automerge, _: &Change) -> Result<(), String> {
    Ok(())
}

/// What the adapter must do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Store these bytes durably before carrying out any later effect.
    Persist(Persist),
    /// Send this encoded sync message to the peer.
    Send(Vec<u8>),
    /// Nothing to send: as far as the protocol knows, the peer has our heads.
    Idle { heads: Vec<ChangeHash> },
}

/// New changes merged into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// Raw change chunks, loadable with `Automerge::load_incremental`.
    pub bytes: Vec<u8>,
    pub n_changes: usize,
    /// The document's heads after the merge.
    pub heads: Vec<ChangeHash>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("malformed sync message: {0}")]
    Malformed(String),
    #[error("malformed change in sync message: {0}")]
    MalformedChange(String),
    #[error("change {hash} refused: {reason}")]
    Rejected { hash: ChangeHash, reason: String },
    #[error("automerge could not apply the message")]
    Apply(#[from] AutomergeError),
    #[error("{bytes} bytes of changes wait for dependencies that never came (limit {limit})")]
    HeldTooLarge { bytes: usize, limit: usize },
}

/// A change received before its dependencies, with the number of messages
/// received since.
#[derive(Debug, Clone)]
struct HeldChange {
    change: Change,
    rounds: u32,
}

/// Changes waiting for their dependencies, by hash.
#[derive(Debug, Clone, Default)]
struct Held {
    changes: BTreeMap<ChangeHash, HeldChange>,
    bytes: usize,
}

impl Held {
    fn insert(&mut self, change: Change) -> bool {
        let hash = change.hash();
        if self.changes.contains_key(&hash) {
            return false;
        }
        self.bytes += change.raw_bytes().len();
        self.changes.insert(hash, HeldChange { change, rounds: 0 });
        true
    }

    /// Takes out, in causal order, every held change whose dependencies are
    /// all in `doc` or among the changes taken before it.
    fn take_ready(&mut self, doc: &Automerge) -> Vec<Change> {
        if self.changes.is_empty() {
            return Vec::new();
        }
        let all: Vec<Change> = self.changes.values().map(|h| h.change.clone()).collect();
        let mut ready_hashes: HashSet<ChangeHash> = HashSet::new();
        let mut ready = Vec::new();
        for change in crate::docs::causal_order(all) {
            let deps_present = change
                .deps()
                .iter()
                .all(|d| ready_hashes.contains(d) || doc.get_change_meta_by_hash(d).is_some());
            if deps_present {
                ready_hashes.insert(change.hash());
                if let Some(h) = self.changes.remove(&change.hash()) {
                    self.bytes -= h.change.raw_bytes().len();
                }
                ready.push(change);
            }
        }
        ready
    }

    /// The first hashes on each path back from `start` that are neither in
    /// `doc` nor held (dependencies of held changes are walked through).
    fn missing(&self, doc: &Automerge, start: impl Iterator<Item = ChangeHash>) -> Vec<ChangeHash> {
        let mut stack: Vec<ChangeHash> = start.collect();
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) || doc.get_change_meta_by_hash(&hash).is_some() {
                continue;
            }
            match self.changes.get(&hash) {
                Some(held) => stack.extend(held.change.deps().iter().copied()),
                None => missing.push(hash),
            }
        }
        missing.sort();
        missing
    }

    /// One more message went by: drops what waited too long; returns how
    /// many changes were dropped.
    fn age(&mut self) -> u64 {
        let mut expired = Vec::new();
        for (hash, held) in &mut self.changes {
            held.rounds += 1;
            if held.rounds > MAX_HELD_ROUNDS {
                expired.push(*hash);
            }
        }
        for hash in &expired {
            if let Some(h) = self.changes.remove(hash) {
                self.bytes -= h.change.raw_bytes().len();
            }
        }
        u64::try_from(expired.len()).unwrap_or(u64::MAX)
    }
}

/// One side of Automerge's sync protocol for one document.
#[derive(Debug, Default)]
pub struct DocPeer {
    state: sync::State,
    held: Held,
    /// Changes held since this peer was created (each counted once): how
    /// often the protocol's Bloom filter misled the sender.
    held_total: u64,
    /// Held changes dropped after [`MAX_HELD_ROUNDS`].
    expired_total: u64,
}

impl DocPeer {
    pub fn new() -> Self {
        DocPeer::default()
    }

    /// The peer received a full snapshot at `heads` by another route: start
    /// from there instead of discovering it with bloom filters.
    pub fn peer_has(heads: Vec<ChangeHash>) -> Self {
        let mut state = sync::State::new();
        state.shared_heads = heads.clone();
        state.their_heads = Some(heads);
        state.their_need = Some(Vec::new());
        state.their_have = Some(vec![sync::Have {
            last_sync: state.shared_heads.clone(),
            bloom: sync::BloomFilter::default(),
        }]);
        DocPeer {
            state,
            ..DocPeer::default()
        }
    }

    /// Forgets everything about the peer, e.g. after refusing its message.
    pub fn reset(&mut self) {
        self.state = sync::State::new();
        self.held = Held::default();
    }

    /// Changes received before their dependencies, still waiting.
    pub fn held(&self) -> usize {
        self.held.changes.len()
    }

    /// Bytes of the changes still waiting for their dependencies.
    pub fn held_bytes(&self) -> usize {
        self.held.bytes
    }

    /// Changes that ever had to wait for their dependencies at this peer.
    pub fn held_total(&self) -> u64 {
        self.held_total
    }

    /// Held changes dropped because their dependencies never came.
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// The peer's heads as last announced, if any.
    pub fn their_heads(&self) -> Option<&[ChangeHash]> {
        self.state.their_heads.as_deref()
    }

    /// Clears "a message is in flight", so that the next [`Self::generate`]
    /// may speak again: for when the peer answered outside the protocol.
    pub fn peer_answered(&mut self, heads: Vec<ChangeHash>) {
        self.state.in_flight = false;
        self.state.their_heads = Some(heads);
    }

    /// A local change (or another peer's accepted change) may need sending.
    pub fn generate(&mut self, doc: &Automerge) -> Option<Vec<u8>> {
        let generated = doc.generate_sync_message(&mut self.state);
        if self.held.changes.is_empty() {
            return generated.map(sync::Message::encode);
        }
        // Automerge computes `need` from the peer's heads through its own
        // queue, which never holds our held changes: it would ask for the
        // held changes themselves (already sent, so never sent again)
        // instead of the dependencies they wait for.
        let their_heads = self.state.their_heads.clone().unwrap_or_default();
        let need = self.held.missing(
            doc,
            their_heads
                .into_iter()
                .chain(self.held.changes.keys().copied()),
        );
        match generated {
            Some(mut message) => {
                message.need = need;
                Some(message.encode())
            }
            None if need.is_empty() || self.state.in_flight => None,
            None => {
                self.state.in_flight = true;
                Some(
                    sync::Message {
                        heads: doc.get_heads(),
                        need,
                        have: Vec::new(),
                        changes: sync::ChunkList::from(Vec::<Vec<u8>>::new()),
                        flags: None,
                        version: sync::MessageVersion::V1,
                    }
                    .encode(),
                )
            }
        }
    }

    /// Handles one encoded sync message from the peer. On error nothing has
    /// changed: not the document, not the sync state, not what is held.
    pub fn receive(
        &mut self,
        doc: &mut Automerge,
        message: &[u8],
        gate: &mut impl ChangeGate,
    ) -> Result<Vec<Effect>, SyncError> {
        let mut message =
            sync::Message::decode(message).map_err(|e| SyncError::Malformed(e.to_string()))?;
        let before_heads = doc.get_heads();
        let mut state = self.state.clone();
        let mut held = self.held.clone();
        let mut incoming = Vec::new();
        if !message.changes.is_empty() {
            for change in decode_changes(doc, &message.changes)? {
                let hash = change.hash();
                if held.insert(change) {
                    incoming.push(hash);
                }
            }
            if held.bytes > MAX_HELD_BYTES {
                return Err(SyncError::HeldTooLarge {
                    bytes: held.bytes,
                    limit: MAX_HELD_BYTES,
                });
            }
        }
        // Everything received is in `held` now; what has its dependencies
        // goes through the gate, the rest waits.
        let ready = held.take_ready(doc);
        let newly_held = incoming
            .iter()
            .filter(|h| held.changes.contains_key(h))
            .count();
        // Automerge must never see a change it cannot apply yet: it would
        // queue it inside the document and apply it later without the gate.
        message.changes = sync::ChunkList::from(
            ready
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        );

        let staged = if ready.is_empty() {
            None
        } else {
            let mut staged = doc.clone();
            for change in ready {
                gate.check(&staged, &change)
                    .map_err(|reason| SyncError::Rejected {
                        hash: change.hash(),
                        reason,
                    })?;
                let hash = change.hash();
                let kept = change.clone();
                apply_guarded(&mut staged, change)?;
                gate.check_applied(&staged, &kept)
                    .map_err(|reason| SyncError::Rejected { hash, reason })?;
            }
            Some(staged)
        };
        let expired = held.age();
        if expired > 0 {
            // The sender believes we have what it sent: have it send again.
            state.needs_reset = true;
        }

        let mut effects = Vec::new();
        let mut persist = None;
        match staged {
            Some(staged) => {
                // The changes are already in `staged`; receiving only updates
                // the sync state (applying a known change again is a no-op).
                // Reading the new changes back is part of the check: a change
                // automerge applied but cannot read back would poison the
                // document for everyone, so it is refused here instead.
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                    || -> Result<_, AutomergeError> {
                        let mut staged = staged;
                        staged.receive_sync_message(&mut state, message)?;
                        let changes = staged.get_changes(&before_heads);
                        let mut bytes = Vec::new();
                        for change in &changes {
                            bytes.extend_from_slice(change.raw_bytes());
                        }
                        Ok((staged, bytes, changes.len()))
                    },
                ));
                let (staged, bytes, n_changes) = checked.map_err(|_| {
                    SyncError::MalformedChange("changes cannot be read back".to_owned())
                })??;
                *doc = staged;
                persist = Some((bytes, n_changes));
            }
            None => doc.receive_sync_message(&mut state, message)?,
        }
        self.state = state;
        self.held_total += u64::try_from(newly_held).unwrap_or(u64::MAX);
        self.expired_total += expired;
        self.held = held;

        let heads = doc.get_heads();
        if heads != before_heads
            && let Some((bytes, n_changes)) = persist
        {
            effects.push(Effect::Persist(Persist {
                bytes,
                n_changes,
                heads: heads.clone(),
            }));
        }
        match self.generate(doc) {
            Some(bytes) => effects.push(Effect::Send(bytes)),
            None => effects.push(Effect::Idle { heads }),
        }
        Ok(effects)
    }
}

/// The changes of a message that `doc` does not have yet, dependencies
/// first. A message chunk is a sequence of Automerge storage chunks: single
/// changes (V1 sends one per chunk, V2 concatenates them) or a whole saved
/// document (V2 sends one when most of a document is missing).
fn decode_changes(doc: &Automerge, chunks: &sync::ChunkList) -> Result<Vec<Change>, SyncError> {
    let mut out = Vec::new();
    for chunk in chunks.iter() {
        for piece in split_storage_chunks(chunk)? {
            match piece.kind {
                CHUNK_DOCUMENT => {
                    let whole = Automerge::load(piece.bytes)
                        .map_err(|e| SyncError::MalformedChange(e.to_string()))?;
                    out.extend(whole.get_changes(&[]));
                }
                CHUNK_CHANGE | CHUNK_COMPRESSED_CHANGE => {
                    let change = Change::from_bytes(piece.bytes.to_vec())
                        .map_err(|e| SyncError::MalformedChange(e.to_string()))?;
                    out.push(change);
                }
                other => {
                    return Err(SyncError::MalformedChange(format!(
                        "unknown storage chunk type {other}"
                    )));
                }
            }
        }
    }
    out.retain(|c| doc.get_change_meta_by_hash(&c.hash()).is_none());
    // Validation checks each change against a document holding its
    // dependencies, so dependencies inside the message go first.
    Ok(crate::docs::causal_order(out))
}

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;

struct StorageChunk<'a> {
    kind: u8,
    /// The whole chunk, header included.
    bytes: &'a [u8],
}

/// Splits concatenated storage chunks: each is the magic bytes, a 4-byte
/// checksum, a type byte, a ULEB128 body length and the body.
fn split_storage_chunks(mut input: &[u8]) -> Result<Vec<StorageChunk<'_>>, SyncError> {
    let malformed = |what: &str| SyncError::MalformedChange(what.to_owned());
    let mut out = Vec::new();
    while !input.is_empty() {
        if input.len() < 9 || input[..4] != CHUNK_MAGIC {
            return Err(malformed("not an automerge chunk"));
        }
        let kind = input[8];
        let mut len: u64 = 0;
        let mut shift = 0u32;
        let mut pos = 9;
        loop {
            let byte = *input
                .get(pos)
                .ok_or_else(|| malformed("truncated chunk length"))?;
            pos += 1;
            if shift > 56 {
                return Err(malformed("chunk length overflows"));
            }
            len |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|end| *end <= input.len())
            .ok_or_else(|| malformed("truncated chunk"))?;
        out.push(StorageChunk {
            kind,
            bytes: &input[..end],
        });
        input = &input[end..];
    }
    Ok(out)
}

/// Counts the changes of `doc` that are not in the ancestry of `acked`.
/// Applies one change to the staged copy. automerge 0.12 can panic while
/// applying a change that decodes and passes validation yet is internally
/// inconsistent (found by the fault suite's fuzzing,
/// `tests/fixtures/fuzz/crash-sync-*.bin`); such bytes only come from a
/// hostile peer. The copy is thrown away on error, so the panic is turned
/// into a refusal and the document is left as it was.
fn apply_guarded(staged: &mut Automerge, change: Change) -> Result<(), SyncError> {
    let hash = change.hash();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        staged.apply_changes([change])
    })) {
        Ok(result) => Ok(result?),
        Err(_) => Err(SyncError::MalformedChange(format!(
            "change {hash} cannot be applied"
        ))),
    }
}

pub fn count_changes_after(doc: &Automerge, acked: &[ChangeHash]) -> usize {
    // Heads the document does not know (a hub ahead of us) would make
    // get_changes return everything; keep only known ones.
    let known: Vec<ChangeHash> = acked
        .iter()
        .copied()
        .filter(|h| doc.get_change_meta_by_hash(h).is_some())
        .collect();
    doc.get_changes(&known).len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc};

    use crate::actor::CentreActor;
    use crate::centres::CentreId;

    fn doc_of(centre: &str, key: &str, value: &str) -> Automerge {
        let actor = CentreActor::new(CentreId::new(centre).unwrap(), *b"test0001").actor_id();
        let mut doc = AutoCommit::new().with_actor(actor);
        doc.put(ROOT, key, value).unwrap();
        doc.commit();
        doc.document().clone()
    }

    /// Runs the protocol between two peers until both are idle; returns the
    /// number of messages exchanged.
    fn converge(
        a: &mut Automerge,
        b: &mut Automerge,
        gate_b: &mut impl ChangeGate,
    ) -> Result<usize, SyncError> {
        let (mut pa, mut pb) = (DocPeer::new(), DocPeer::new());
        let mut n = 0;
        let mut to_b = pa.generate(a);
        while let Some(msg) = to_b.take() {
            n += 1;
            assert!(n < 50, "sync does not terminate");
            let effects = pb.receive(b, &msg, gate_b)?;
            let Some(Effect::Send(reply)) = effects.last().cloned() else {
                break;
            };
            n += 1;
            let effects = pa.receive(a, &reply, &mut accept_all)?;
            if let Some(Effect::Send(next)) = effects.last().cloned() {
                to_b = Some(next);
            }
        }
        Ok(n)
    }

    #[test]
    fn two_peers_converge_and_persist_before_sending() {
        let mut a = doc_of("namur", "title", "Le jeu des émotions");
        let mut b = doc_of("liege", "age", "8-12");
        converge(&mut a, &mut b, &mut accept_all).unwrap();
        assert_eq!(a.get_heads(), b.get_heads());
        assert!(a.get(ROOT, "age").unwrap().is_some());
        assert!(b.get(ROOT, "title").unwrap().is_some());

        // The persist effect comes first and its bytes rebuild the change.
        let mut c = doc_of("huy-waremme", "x", "y");
        let mut fresh = Automerge::new();
        let mut peer = DocPeer::new();
        let mut sender = DocPeer::new();
        let m1 = sender.generate(&c).unwrap();
        let e1 = peer.receive(&mut fresh, &m1, &mut accept_all).unwrap();
        let Some(Effect::Send(r1)) = e1.last().cloned() else {
            panic!("{e1:?}")
        };
        let e2 = sender.receive(&mut c, &r1, &mut accept_all).unwrap();
        let Some(Effect::Send(m2)) = e2.last().cloned() else {
            panic!("{e2:?}")
        };
        let e3 = peer.receive(&mut fresh, &m2, &mut accept_all).unwrap();
        let Effect::Persist(p) = &e3[0] else {
            panic!("{e3:?}")
        };
        assert_eq!(p.n_changes, 1);
        let mut rebuilt = Automerge::new();
        rebuilt.load_incremental(&p.bytes).unwrap();
        assert_eq!(rebuilt.get_heads(), c.get_heads());
    }

    #[test]
    fn refused_change_leaves_document_and_state_untouched() {
        let mut forged = doc_of("namur", "holding", "mine");
        let mut hub = doc_of("liege", "title", "x");
        let before = hub.get_heads();
        let mut only_liege = |_: &Automerge, c: &Change| {
            let actor = CentreActor::parse(c.actor_id()).map_err(|e| e.to_string())?;
            if actor.centre.as_str() == "liege" {
                Ok(())
            } else {
                Err(format!("actor belongs to {}", actor.centre))
            }
        };
        let err = converge(&mut forged, &mut hub, &mut only_liege).unwrap_err();
        assert!(matches!(err, SyncError::Rejected { .. }), "{err}");
        assert_eq!(hub.get_heads(), before);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let mut doc = Automerge::new();
        let mut peer = DocPeer::new();
        for junk in [&b""[..], b"\x42", b"\x42\x01\x02", &[0xffu8; 100]] {
            assert!(peer.receive(&mut doc, junk, &mut accept_all).is_err());
        }
        // A well-formed message whose change chunk is garbage.
        let msg = sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(vec![b"not a change".to_vec()]),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let err = peer
            .receive(&mut doc, &msg.encode(), &mut accept_all)
            .unwrap_err();
        assert!(matches!(err, SyncError::MalformedChange(_)), "{err}");
        assert!(doc.get_heads().is_empty());
    }

    #[test]
    fn snapshot_start_skips_discovery() {
        let a = doc_of("namur", "k", "v");
        let mut peer = DocPeer::peer_has(a.get_heads());
        assert!(peer.generate(&a).is_some());
        assert_eq!(count_changes_after(&a, &a.get_heads()), 0);
        assert_eq!(count_changes_after(&a, &[]), 1);
    }
}
