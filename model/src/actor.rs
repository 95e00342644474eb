//! The actor scheme: every Automerge change carries the centre that made it.
//!
//! An Automerge actor id is opaque bytes. Ours are laid out as
//!
//! ```text
//! [0x01 scheme version][n = centre id length][centre id, n bytes UTF-8][instance, 8 bytes]
//! ```
//!
//! The instance part distinguishes two installations (or a reinstalled node) of
//! the same centre, which Automerge requires: two writers must never share an
//! actor. The hub parses the actor of every incoming change and compares the
//! centre with the one named in the client certificate; a change whose actor
//! does not parse, or names another centre, is refused.

use automerge::ActorId;

use crate::centres::{CentreId, UnknownCentre};

const SCHEME_V1: u8 = 1;
const INSTANCE_LEN: usize = 8;

/// An actor decoded into the centre that owns it and its instance tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentreActor {
    pub centre: CentreId,
    pub instance: [u8; INSTANCE_LEN],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActorError {
    #[error("actor id is not in the federation's scheme")]
    Malformed,
    #[error("actor names an unknown centre")]
    UnknownCentre(#[from] UnknownCentre),
}

impl CentreActor {
    pub fn new(centre: CentreId, instance: [u8; INSTANCE_LEN]) -> Self {
        CentreActor { centre, instance }
    }

    /// The Automerge actor for this centre instance.
    pub fn actor_id(&self) -> ActorId {
        let id = self.centre.as_str().as_bytes();
        let mut bytes = Vec::with_capacity(2 + id.len() + INSTANCE_LEN);
        bytes.push(SCHEME_V1);
        // Centre ids are short ASCII slugs (checked by CentreId), far below 255.
        bytes.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&self.instance);
        ActorId::from(bytes)
    }

    /// Decodes an actor id; fails for anything not made by [`Self::actor_id`].
    pub fn parse(actor: &ActorId) -> Result<Self, ActorError> {
        let bytes = actor.to_bytes();
        let (&version, rest) = bytes.split_first().ok_or(ActorError::Malformed)?;
        if version != SCHEME_V1 {
            return Err(ActorError::Malformed);
        }
        let (&len, rest) = rest.split_first().ok_or(ActorError::Malformed)?;
        let len = usize::from(len);
        if rest.len() != len + INSTANCE_LEN {
            return Err(ActorError::Malformed);
        }
        let id = std::str::from_utf8(&rest[..len]).map_err(|_| ActorError::Malformed)?;
        let centre = CentreId::new(id)?;
        let mut instance = [0u8; INSTANCE_LEN];
        instance.copy_from_slice(&rest[len..]);
        Ok(CentreActor { centre, instance })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_actors() {
        let a = CentreActor::new(CentreId::new("liege").unwrap(), *b"abcdefgh");
        assert_eq!(CentreActor::parse(&a.actor_id()).unwrap(), a);
        assert_eq!(
            CentreActor::parse(&ActorId::random()),
            Err(ActorError::Malformed)
        );
        let mut forged = vec![1u8, 7];
        forged.extend_from_slice(b"nowhere12345678");
        assert!(matches!(
            CentreActor::parse(&ActorId::from(forged)),
            Err(ActorError::UnknownCentre(_))
        ));
    }
}
