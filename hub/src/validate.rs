//! Write validation: the one place where the hub decides whether an incoming
//! change may be merged, given the authenticated caller and its role.
//!
//! Committees and read-only members never write. For a writing centre, every
//! change must pass the shared-documents validation.
//!
//! SWITCH POINT: `check_centre_change` below is an interim check (the actor
//! must be a `CentreActor` of the authenticated centre; `stats/<centre>` is
//! written by that centre only). Once `clps_model::docs::validate_change`
//! lands, replace its body with a call to it; nothing else in the hub needs
//! to change.

use automerge::{Automerge, Change};
use clps_model::docs::{DocId, DocKind};
use clps_model::{CentreActor, CentreId};

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
    _before: &Automerge,
    change: &Change,
    author: &CentreId,
) -> Result<(), String> {
    let actor = CentreActor::parse(change.actor_id()).map_err(|e| e.to_string())?;
    if &actor.centre != author {
        return Err(format!(
            "change was made by centre {} but sent by centre {author}",
            actor.centre
        ));
    }
    if let DocKind::Stats { centre } = doc_id.kind()
        && centre != author
    {
        return Err(format!("only centre {centre} may write {doc_id}"));
    }
    Ok(())
}
