//! Who may see and write which space.
//!
//! `catalogue` and `stats` have every centre as a writer; points d'appui and
//! surveys list their members in the configuration. Committees read every
//! space and write none. A space the caller is not a member of is invisible:
//! it is not listed, and any request about its documents gets the same
//! PERMISSION_DENIED whether the document exists or not.

use std::collections::BTreeMap;

use clps_model::CentreId;
use clps_model::docs::SpaceId;

use crate::config::SpaceConfig;
use crate::identity::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
}

#[derive(Debug, Clone)]
enum Members {
    AllCentres,
    Listed(BTreeMap<CentreId, Role>),
}

#[derive(Debug, Clone)]
pub struct Access {
    spaces: BTreeMap<SpaceId, Members>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("identifiant d'espace invalide dans la configuration")]
    Space(#[from] clps_model::docs::DocIdError),
    #[error("membre invalide dans l'espace {space}")]
    Member {
        space: String,
        #[source]
        source: clps_model::UnknownCentre,
    },
}

impl Access {
    pub fn from_config(spaces: &[SpaceConfig]) -> Result<Access, AccessError> {
        let mut map = BTreeMap::new();
        map.insert(SpaceId::catalogue(), Members::AllCentres);
        map.insert(SpaceId::stats(), Members::AllCentres);
        for space in spaces {
            let id = SpaceId::parse(&space.id)?;
            if space.writers.iter().any(|w| w == "*") {
                map.insert(id, Members::AllCentres);
                continue;
            }
            let mut members = BTreeMap::new();
            let parse = |c: &String| {
                CentreId::new(c).map_err(|source| AccessError::Member {
                    space: space.id.clone(),
                    source,
                })
            };
            for reader in &space.readers {
                members.insert(parse(reader)?, Role::Read);
            }
            for writer in &space.writers {
                members.insert(parse(writer)?, Role::Write);
            }
            map.insert(id, Members::Listed(members));
        }
        Ok(Access { spaces: map })
    }

    /// The caller's role in a space, or `None` if it is not a member (or the
    /// space does not exist: the caller cannot tell the two apart).
    pub fn role(&self, identity: &Identity, space: &SpaceId) -> Option<Role> {
        let members = self.spaces.get(space)?;
        match identity {
            Identity::Committee(_) => Some(Role::Read),
            Identity::Centre(centre) => match members {
                Members::AllCentres => Some(Role::Write),
                Members::Listed(list) => list.get(centre).copied(),
            },
        }
    }

    /// Every space the caller is a member of, with its role.
    pub fn visible(&self, identity: &Identity) -> Vec<(SpaceId, Role)> {
        self.spaces
            .keys()
            .filter_map(|space| self.role(identity, space).map(|r| (space.clone(), r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roles_follow_membership_and_committees_only_read() {
        let access = Access::from_config(&[SpaceConfig {
            id: "appui:evras".to_owned(),
            writers: vec!["namur".to_owned()],
            readers: vec!["liege".to_owned()],
        }])
        .unwrap();
        let centre = |c: &str| Identity::Centre(CentreId::new(c).unwrap());
        let evras = SpaceId::parse("appui:evras").unwrap();
        assert_eq!(access.role(&centre("namur"), &evras), Some(Role::Write));
        assert_eq!(access.role(&centre("liege"), &evras), Some(Role::Read));
        assert_eq!(access.role(&centre("bruxelles"), &evras), None);
        assert_eq!(
            access.role(&centre("bruxelles"), &SpaceId::catalogue()),
            Some(Role::Write)
        );
        let committee = Identity::Committee("inter-clps".to_owned());
        assert_eq!(access.role(&committee, &evras), Some(Role::Read));
        assert_eq!(access.visible(&centre("bruxelles")).len(), 2);
        assert_eq!(access.visible(&committee).len(), 3);
        let unknown = SpaceId::parse("survey:none").unwrap();
        assert_eq!(access.role(&committee, &unknown), None);
    }
}
