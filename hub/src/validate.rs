//! Write validation: the one place where the hub decides whether an incoming
//! change may be merged, given the authenticated caller and its role.
//!
//! Committees and read-only members never write. For a writing centre, every
//! change must pass the shared-documents validation.
//!
//! The shared-documents rules (actor of the authenticated centre, genesis,
//! `stats/<centre>` owned by its centre, holdings and provenance) are
//! `clps_model::docs::validate_change`, called here and nowhere else.

use automerge::{Automerge, Change};
use clps_model::CentreId;
use clps_model::docs::{self, DocId, Touched};
use clps_model::sync::ChangeGate;

use crate::access::Role;
use crate::identity::Identity;

/// Checks one change against the document as it stands before it (the
/// operation rules only: the sync path uses [`Gate`], which also checks
/// what the change leaves).
pub fn check_change(
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    identity: &Identity,
    role: Role,
) -> Result<(), String> {
    Gate::new(doc_id, identity, role).check(before, change)
}

fn check_centre_change(
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    author: &CentreId,
) -> Result<Touched, String> {
    docs::check_ops(doc_id, before, change, author, false).map_err(|e| chain(&e))
}

/// The whole chain: "change 2 of the batch is refused: ...".
fn chain(e: &docs::ValidationError) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The sync gate of one session and document: the operation rules before a
/// change is applied to the staged copy, the content rules after.
#[derive(Debug)]
pub struct Gate<'a> {
    pub doc_id: &'a DocId,
    pub identity: &'a Identity,
    pub role: Role,
    touched: Option<Touched>,
}

impl<'a> Gate<'a> {
    pub fn new(doc_id: &'a DocId, identity: &'a Identity, role: Role) -> Self {
        Gate {
            doc_id,
            identity,
            role,
            touched: None,
        }
    }
}

impl ChangeGate for Gate<'_> {
    fn check(&mut self, before: &Automerge, change: &Change) -> Result<(), String> {
        match self.identity {
            Identity::Committee(_) => Err("committee identities are read-only".to_owned()),
            Identity::Centre(_) if self.role != Role::Write => {
                Err(format!("read-only member of space {}", self.doc_id.space()))
            }
            Identity::Centre(centre) => {
                self.touched = Some(check_centre_change(self.doc_id, before, change, centre)?);
                Ok(())
            }
        }
    }

    fn check_applied(&mut self, after: &Automerge, _change: &Change) -> Result<(), String> {
        match self.touched.take() {
            Some(touched) => {
                docs::check_applied(self.doc_id, after, &touched).map_err(|e| chain(&e))
            }
            None => Err("change applied without being checked".to_owned()),
        }
    }
}
