//! Convergence on the real sync path: a hub and several nodes, each link a
//! pair of `DocPeer`s exchanging Automerge sync messages (Bloom filters
//! included), the hub running the validation gate on every change exactly as
//! `clps-hub` does. Nodes edit one catalogue bucket concurrently (several
//! changes between messages, so the filters' false positives happen),
//! messages are delivered in random order across links (in order within a
//! link, as on a gRPC stream), links drop (both sides start over, sometimes
//! from the heads the Welcome vouched for) and nodes go offline for a while
//! and keep editing. When the edits stop and every link is up, the protocol
//! alone must bring every replica to the same heads with no change refused.
//!
//! A false positive makes a sender skip a change the receiver lacks while
//! sending the changes that depend on it; the receiver holds those until
//! the skipped change arrives. `held` counts them: the long seeded run must
//! meet some, or it would not test what it claims to.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, VecDeque};

use automerge::{Automerge, Change, ChangeHash};
use clps_model::docs::catalogue::{
    Availability, CatalogueDoc, Holding, RecordEdit, RecordId, bucket_of,
};
use clps_model::docs::{DocId, validate_change};
use clps_model::sync::{DocPeer, Effect, accept_all};
use clps_model::{CentreActor, CentreId};
use common::*;
use proptest::prelude::*;

const BUCKET: u16 = 40;
const CENTRES: [&str; 4] = ["namur", "liege", "bruxelles", "charleroi-thuin"];

/// A small deterministic generator (xorshift64*), so a failing schedule is
/// replayed from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

enum Down {
    Sync(Vec<u8>),
    Idle(Vec<ChangeHash>),
}

struct Link {
    up: VecDeque<Vec<u8>>,
    down: VecDeque<Down>,
    hub_peer: DocPeer,
    node_peer: DocPeer,
    online: bool,
}

struct Node {
    centre: CentreId,
    /// What the centre edits (the node's store).
    edit: CatalogueDoc,
    /// The session's copy (the link's `NodeDoc`).
    sync: Automerge,
    next_local: u64,
}

#[derive(Default, Debug)]
struct Tally {
    held: u64,
    expired: u64,
    messages: u64,
    changes_made: u64,
}

struct Net {
    doc_id: DocId,
    hub: Automerge,
    nodes: Vec<Node>,
    links: Vec<Link>,
    records: Vec<RecordId>,
    tally: Tally,
}

fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

fn new_changes(from: &Automerge, to: &Automerge) -> Vec<Change> {
    from.get_changes(&to.get_heads())
        .into_iter()
        .filter(|c| to.get_change_meta_by_hash(&c.hash()).is_none())
        .collect()
}

impl Net {
    fn new(n: usize) -> Net {
        let seed_actor = actor("charleroi-thuin", 0xAA);
        let mut seed = CatalogueDoc::create(BUCKET, seed_actor).unwrap();
        let mut records = Vec::new();
        let mut start = 0;
        for n in 0..4 {
            let id = id_in_bucket("charleroi-thuin", BUCKET, start);
            start = local_number(&id) + 1;
            seed.create_record(&id, &fields(&format!("Outil {n}")))
                .unwrap();
            records.push(id);
        }
        let bytes = seed.save();
        let hub = Automerge::load(&bytes).unwrap();
        let nodes = CENTRES[..n]
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let a = CentreActor::new(centre(c), [i as u8 + 1; 8]);
                Node {
                    centre: centre(c),
                    edit: CatalogueDoc::load(BUCKET, &bytes, a).unwrap(),
                    sync: Automerge::load(&bytes).unwrap(),
                    next_local: 10_000,
                }
            })
            .collect();
        let links = (0..n)
            .map(|_| Link {
                up: VecDeque::new(),
                down: VecDeque::new(),
                hub_peer: DocPeer::new(),
                node_peer: DocPeer::new(),
                online: true,
            })
            .collect();
        Net {
            doc_id: DocId::catalogue(BUCKET),
            hub,
            nodes,
            links,
            records,
            tally: Tally::default(),
        }
    }

    /// `k` local changes at node `i`, then the link offers them.
    fn edit(&mut self, rng: &mut Rng, i: usize, k: usize) {
        for _ in 0..k {
            let node = &mut self.nodes[i];
            // A record this node knows of.
            let known = node.edit.record_ids();
            let pick = known[rng.below(known.len())].clone();
            match rng.below(5) {
                0 => {
                    let n = (node.next_local..)
                        .find(|n| bucket_of(&RecordId::from_local(&node.centre, *n)) == BUCKET)
                        .unwrap();
                    node.next_local = n + 1;
                    let id = RecordId::from_local(&node.centre, n);
                    node.edit
                        .create_record(&id, &fields(&format!("Outil de {}", node.centre)))
                        .unwrap();
                    self.records.push(id);
                }
                1 => node
                    .edit
                    .set_holding(
                        &pick,
                        &Holding {
                            copies: u32::try_from(rng.below(5)).unwrap() + 1,
                            shelf_mark: format!("C{}", rng.below(100)),
                            availability: Availability::Available,
                        },
                    )
                    .unwrap(),
                2 => node
                    .edit
                    .edit_record(
                        &pick,
                        &[RecordEdit::Title(format!("Titre {}", rng.next() % 1000))],
                    )
                    .unwrap(),
                3 => node
                    .edit
                    .edit_record(
                        &pick,
                        &[RecordEdit::SpliceDescription {
                            pos: 0,
                            delete: 0,
                            insert: "é".to_owned(),
                        }],
                    )
                    .unwrap(),
                _ => node
                    .edit
                    .edit_record(
                        &pick,
                        &[RecordEdit::Year(Some(
                            2000 + u16::try_from(rng.below(25)).unwrap(),
                        ))],
                    )
                    .unwrap(),
            }
            self.tally.changes_made += 1;
        }
        self.local_to_session(i);
    }

    /// The link picks up what the store holds (`poll_local`) and speaks.
    fn local_to_session(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let fresh = new_changes(node.edit.automerge_mut().document(), &node.sync);
        node.sync.apply_changes(fresh).unwrap();
        let link = &mut self.links[i];
        if link.online
            && let Some(m) = link.node_peer.generate(&node.sync)
        {
            link.up.push_back(m);
        }
    }

    /// A new session on link `i` (after a drop, or coming back online):
    /// both sides start over, from the heads the Welcome vouched for when
    /// it could.
    fn reconnect(&mut self, i: usize) {
        self.retire(i);
        let node = &self.nodes[i];
        let hub_heads = heads(&self.hub);
        let node_heads = heads(&node.sync);
        let link = &mut self.links[i];
        link.up.clear();
        link.down.clear();
        link.online = true;
        link.hub_peer = if hub_heads == node_heads {
            DocPeer::peer_has(node_heads.clone())
        } else {
            DocPeer::new()
        };
        link.node_peer = if hub_heads
            .iter()
            .all(|h| node.sync.get_change_meta_by_hash(h).is_some())
        {
            DocPeer::peer_has(hub_heads)
        } else {
            DocPeer::new()
        };
        if let Some(m) = link.node_peer.generate(&node.sync) {
            link.up.push_back(m);
        }
    }

    fn go_offline(&mut self, i: usize) {
        self.retire(i);
        let link = &mut self.links[i];
        link.online = false;
        link.up.clear();
        link.down.clear();
    }

    /// Counts what the peers of link `i` held before they are replaced.
    fn retire(&mut self, i: usize) {
        let link = &self.links[i];
        self.tally.held += link.hub_peer.held_total() + link.node_peer.held_total();
        self.tally.expired += link.hub_peer.expired_total() + link.node_peer.expired_total();
    }

    /// The hub receives the next message of link `i`.
    fn deliver_up(&mut self, i: usize) {
        let Some(message) = self.links[i].up.pop_front() else {
            return;
        };
        self.tally.messages += 1;
        let author = self.nodes[i].centre.clone();
        let doc_id = self.doc_id.clone();
        let mut gate = |before: &Automerge, change: &Change| {
            validate_change(&doc_id, before, change, &author).map_err(|e| e.to_string())
        };
        let effects = self.links[i]
            .hub_peer
            .receive(&mut self.hub, &message, &mut gate)
            .unwrap_or_else(|e| panic!("the hub refused an honest message from {author}: {e}"));
        let mut stored = false;
        for effect in effects {
            match effect {
                Effect::Persist(_) => stored = true,
                Effect::Send(m) => self.links[i].down.push_back(Down::Sync(m)),
                Effect::Idle { heads } => self.links[i].down.push_back(Down::Idle(heads)),
            }
        }
        if stored {
            // The broadcast: every other session pushes.
            for j in 0..self.links.len() {
                if j != i
                    && self.links[j].online
                    && let Some(m) = self.links[j].hub_peer.generate(&self.hub)
                {
                    self.links[j].down.push_back(Down::Sync(m));
                }
            }
        }
    }

    /// Node `i` receives the next message of its link.
    fn deliver_down(&mut self, i: usize) {
        let Some(message) = self.links[i].down.pop_front() else {
            return;
        };
        self.tally.messages += 1;
        let node = &mut self.nodes[i];
        let link = &mut self.links[i];
        match message {
            Down::Sync(bytes) => {
                let effects = link
                    .node_peer
                    .receive(&mut node.sync, &bytes, &mut accept_all)
                    .unwrap_or_else(|e| {
                        panic!("{} could not use the hub's message: {e}", node.centre)
                    });
                for effect in effects {
                    match effect {
                        Effect::Persist(p) => {
                            // Persisted into the store, as `persist_received`.
                            node.edit
                                .automerge_mut()
                                .load_incremental(&p.bytes)
                                .unwrap();
                        }
                        Effect::Send(m) => link.up.push_back(m),
                        Effect::Idle { .. } => {}
                    }
                }
            }
            Down::Idle(hub_heads) => {
                let mut ours = heads(&node.sync);
                ours.sort();
                if ours != hub_heads {
                    link.node_peer.peer_answered(hub_heads);
                    if let Some(m) = link.node_peer.generate(&node.sync) {
                        link.up.push_back(m);
                    }
                }
            }
        }
    }

    fn busy(&self) -> bool {
        self.links
            .iter()
            .any(|l| !l.up.is_empty() || !l.down.is_empty())
    }

    /// Delivers one random pending message.
    fn step(&mut self, rng: &mut Rng) {
        let candidates: Vec<(usize, bool)> = self
            .links
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                let mut v = Vec::new();
                if !l.up.is_empty() {
                    v.push((i, true));
                }
                if !l.down.is_empty() {
                    v.push((i, false));
                }
                v
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (i, up) = candidates[rng.below(candidates.len())];
        if up {
            self.deliver_up(i);
        } else {
            self.deliver_down(i);
        }
    }

    /// Every link up, every message delivered; then every replica must hold
    /// exactly what the hub holds, and the hub every change ever made.
    fn settle(&mut self, rng: &mut Rng) {
        for i in 0..self.links.len() {
            if !self.links[i].online {
                self.reconnect(i);
            }
            // What was written while the link was busy is offered too.
            self.local_to_session(i);
        }
        let mut steps = 0u64;
        while self.busy() {
            steps += 1;
            assert!(steps < 200_000, "the protocol does not settle");
            self.step(rng);
        }
        let hub_heads = heads(&self.hub);
        let mut made: BTreeSet<ChangeHash> = BTreeSet::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            assert_eq!(
                heads(&node.sync),
                hub_heads,
                "{} stopped syncing: {} held by its hub peer, {} by its own",
                node.centre,
                self.links[i].hub_peer.held(),
                self.links[i].node_peer.held()
            );
            assert_eq!(
                heads(node.edit.automerge_mut().document()),
                hub_heads,
                "{}'s store is not at the hub's heads",
                node.centre
            );
            made.extend(
                node.edit
                    .automerge_mut()
                    .document()
                    .get_changes(&[])
                    .iter()
                    .map(Change::hash),
            );
            assert_eq!(self.links[i].hub_peer.held(), 0);
            assert_eq!(self.links[i].node_peer.held(), 0);
        }
        let at_hub: BTreeSet<ChangeHash> =
            self.hub.get_changes(&[]).iter().map(Change::hash).collect();
        assert_eq!(
            made, at_hub,
            "a change made at a node is missing at the hub"
        );
    }
}

/// One random schedule: `rounds` of edits, deliveries, drops and offline
/// periods, then a settle. Returns the tally.
fn run(seed: u64, n: usize, rounds: usize) -> Tally {
    let mut rng = Rng::new(seed);
    let mut net = Net::new(n);
    for _ in 0..rounds {
        for i in 0..n {
            if rng.chance(60) {
                let k = 1 + rng.below(12);
                net.edit(&mut rng, i, k);
            }
        }
        for _ in 0..rng.below(12) {
            net.step(&mut rng);
        }
        let i = rng.below(n);
        if rng.chance(4) {
            net.reconnect(i);
        } else if rng.chance(3) {
            net.go_offline(i);
        } else if !net.links[i].online && rng.chance(20) {
            net.reconnect(i);
        }
        if rng.chance(5) {
            net.settle(&mut rng);
        }
    }
    net.settle(&mut rng);
    // The peers of the last sessions.
    for i in 0..n {
        net.retire(i);
    }
    net.tally
}

#[test]
fn bloom_false_positives_are_held_then_applied_never_refused() {
    let mut held = 0;
    let mut messages = 0;
    let mut changes = 0;
    for seed in 1..=3 {
        let tally = run(seed, 4, 80);
        held += tally.held;
        messages += tally.messages;
        changes += tally.changes_made;
        assert_eq!(
            tally.expired, 0,
            "seed {seed}: a held change waited too long"
        );
    }
    eprintln!("{changes} changes, {messages} messages, {held} held (Bloom false positives)");
    assert!(
        held > 0,
        "no false positive in {changes} changes: the test no longer exercises held changes"
    );
}

/// Two successive title edits of the first record at the first node, once
/// the hub and the nodes agree: `(x, y)`, `y` built on `x`.
fn two_edits(net: &mut Net, seed: u64) -> (Vec<ChangeHash>, Change, Change) {
    net.settle(&mut Rng::new(seed));
    let before = net.hub.get_heads();
    let id = net.records[0].clone();
    let node = &mut net.nodes[0];
    for title in ["Premier", "Second"] {
        node.edit
            .edit_record(&id, &[RecordEdit::Title(title.to_owned())])
            .unwrap();
    }
    let changes = node.edit.automerge_mut().get_changes(&before);
    assert_eq!(changes.len(), 2);
    let (x, y) = (changes[0].clone(), changes[1].clone());
    assert_eq!(y.deps(), &[x.hash()]);
    (before, x, y)
}

/// A sync message carrying one change and announcing `heads`.
fn carrying(change: &Change, heads: Vec<ChangeHash>) -> Vec<u8> {
    automerge::sync::Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: automerge::sync::ChunkList::from(vec![change.raw_bytes().to_vec()]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

/// A change sent without its dependency (what a false positive produces),
/// forced by hand: it is held, the reply asks for the dependency, and both
/// pass the gate in causal order once it comes.
#[test]
fn a_change_without_its_dependency_is_held_and_its_dependency_asked_for() {
    let mut net = Net::new(1);
    let (before, x, y) = two_edits(&mut net, 1);
    let mut checked = Vec::new();
    let author = net.nodes[0].centre.clone();
    let doc_id = net.doc_id.clone();
    let mut gate = |before: &Automerge, change: &Change| {
        checked.push(change.hash());
        validate_change(&doc_id, before, change, &author).map_err(|e| e.to_string())
    };
    let mut peer = DocPeer::peer_has(before.clone());
    let effects = peer
        .receive(&mut net.hub, &carrying(&y, vec![y.hash()]), &mut gate)
        .unwrap();
    assert_eq!(peer.held(), 1);
    assert_eq!(
        net.hub.get_heads(),
        before,
        "nothing applied without its dependency"
    );
    let Some(Effect::Send(reply)) = effects.last() else {
        panic!("the hub must answer: {effects:?}")
    };
    assert!(!effects.iter().any(|e| matches!(e, Effect::Persist(_))));
    let reply = automerge::sync::Message::decode(reply).unwrap();
    assert_eq!(
        reply.need,
        vec![x.hash()],
        "the reply asks for the missing dependency"
    );

    let effects = peer
        .receive(&mut net.hub, &carrying(&x, vec![y.hash()]), &mut gate)
        .unwrap();
    let Some(Effect::Persist(p)) = effects.first() else {
        panic!("{effects:?}")
    };
    assert_eq!(p.n_changes, 2);
    assert_eq!(peer.held(), 0);
    assert_eq!(peer.held_total(), 1);
    assert_eq!(net.hub.get_heads(), vec![y.hash()]);
    assert_eq!(checked, vec![x.hash(), y.hash()], "gate in causal order");
}

/// A change that stays invalid once its dependencies are present is still
/// refused, and leaves nothing held.
#[test]
fn a_held_change_that_is_invalid_is_refused_when_its_dependency_arrives() {
    let mut net = Net::new(2);
    let (before, x, y) = two_edits(&mut net, 2);
    // Sent in the name of the other centre: the actor is not theirs.
    let author = net.nodes[1].centre.clone();
    let doc_id = net.doc_id.clone();
    let mut gate = |before: &Automerge, change: &Change| {
        validate_change(&doc_id, before, change, &author).map_err(|e| e.to_string())
    };
    let mut peer = DocPeer::peer_has(before.clone());
    peer.receive(&mut net.hub, &carrying(&y, vec![y.hash()]), &mut gate)
        .unwrap();
    assert_eq!(peer.held(), 1);
    let err = peer
        .receive(&mut net.hub, &carrying(&x, vec![y.hash()]), &mut gate)
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(net.hub.get_heads(), before);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn replicas_converge_under_any_schedule(seed in any::<u64>(), n in 2usize..=4, rounds in 10usize..40) {
        let tally = run(seed, n, rounds);
        prop_assert_eq!(tally.expired, 0);
    }
}
