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
use clps_model::docs::{self, DocId};

use crate::access::Role;
use crate::identity::Identity;

/// Checks one change against the document as it stands before it.
pub fn check_change(
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    identity: &Identity,
    role: Role,
) -> Result<(), String> {
    match identity {
        Identity::Committee(_) => Err("committee identities are read-only".to_owned()),
        Identity::Centre(_) if role != Role::Write => {
            Err(format!("read-only member of space {}", doc_id.space()))
        }
        Identity::Centre(centre) => check_centre_change(doc_id, before, change, centre),
    }
}

fn check_centre_change(
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    author: &CentreId,
) -> Result<(), String> {
    docs::validate_change(doc_id, before, change, author).map_err(|e| {
        // Keep the whole chain: "change 2 of the batch is refused: ...".
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    })
}
