//! Types shared by the node and the hub: centre identities, the network's code
//! lists, the actor scheme that ties every Automerge change to a centre, and the
//! schemas of the shared documents with their validation.
//!
//! This crate does no IO: it never touches a file, a socket or a clock, so both
//! binaries and every test can use it as plain data and functions. The seed data
//! under `data/` is embedded at compile time; the product never reads
//! `../shared` at run time.

pub mod actor;
pub mod centres;
pub mod docs;
pub mod seed_data;
pub mod stats;
pub mod survey_results;
pub mod sync;
pub mod text;
pub mod vocab;

pub use actor::{ActorError, CentreActor};
pub use centres::{Centre, CentreId, UnknownCentre};
pub use vocab::{CodeList, Vocabularies};
