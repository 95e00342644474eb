//! The sans-IO sync core shared by the node and the hub.
//!
//! Neither side's network or storage code lives here: [`DocPeer`] is the
//! per-document state machine (events in: a peer's sync message, a local
//! change; effects out: [`Effect::Persist`], [`Effect::Send`],
//! [`Effect::Idle`]), and [`digest`] computes the per-space digests that let
//! a reconnect skip every space in which nothing changed. The hub's `rpc`
//! module and the node's `link` module are adapters that carry the effects
//! to tonic and SQLite, so this module is tested without sockets or disks.
//!
//! A session, seen from the node:
//!
//! 1. send one digest per local space; the hub answers, per space the node is
//!    a member of, either "in sync" or the hub's heads of every document;
//! 2. fetch a snapshot (`Automerge::save`) of every document the node lacks;
//! 3. run Automerge's sync protocol, through a [`DocPeer`] per document, only
//!    for documents whose heads differ;
//! 4. stay connected (serve) or leave once every document has converged
//!    (sync once).
//!
//! The order of effects is the durability contract: a `Persist` always comes
//! before the `Send` that acknowledges it, and the adapters execute effects
//! in order, so nothing is acknowledged before it is on disk.

pub mod digest;
pub mod peer;

pub use digest::{SpaceDigest, digest_by_space, space_digest};
pub use peer::{ChangeGate, DocPeer, Effect, Persist, SyncError, accept_all, count_changes_after};
