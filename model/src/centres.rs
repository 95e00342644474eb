//! The ten centres of the federation, embedded from `data/centres.json`.
//!
//! A [`CentreId`] can only be built from one of those ids, so any function that
//! takes one knows it names a real centre. The hub builds it from the verified
//! client certificate; the node from its own configuration.

use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

const CENTRES_JSON: &str = include_str!("../data/centres.json");

/// One centre as published in the joint CLPS reference document.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Centre {
    pub id: String,
    pub name: String,
    pub short: String,
    pub city: String,
    pub territory: Vec<String>,
}

#[derive(Deserialize)]
struct CentresFile {
    centres: Vec<Centre>,
}

/// All ten centres, in the order of the reference document.
pub fn all() -> &'static [Centre] {
    static CENTRES: OnceLock<Vec<Centre>> = OnceLock::new();
    CENTRES.get_or_init(|| {
        // The file is part of the binary and checked by a unit test; a parse
        // failure here is a build defect, not bad input.
        #[allow(clippy::expect_used)]
        let file: CentresFile =
            serde_json::from_str(CENTRES_JSON).expect("embedded centres.json is valid");
        file.centres
    })
}

/// The stable id of one of the ten centres (`charleroi-thuin`, `bruxelles`...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CentreId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("centre inconnu « {0} » (centres connus : {known})", known = known_ids())]
pub struct UnknownCentre(pub String);

fn known_ids() -> String {
    all()
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl CentreId {
    /// Accepts exactly one of the ten published ids.
    pub fn new(id: &str) -> Result<Self, UnknownCentre> {
        if all().iter().any(|c| c.id == id) {
            Ok(CentreId(id.to_owned()))
        } else {
            Err(UnknownCentre(id.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The centre's published description.
    pub fn centre(&self) -> &'static Centre {
        // A CentreId is only built from an id in `all()`.
        all().iter().find(|c| c.id == self.0).unwrap_or(&all()[0])
    }

    /// Every centre id, in reference order.
    pub fn all_ids() -> Vec<CentreId> {
        all().iter().map(|c| CentreId(c.id.clone())).collect()
    }
}

impl fmt::Display for CentreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CentreId {
    type Err = UnknownCentre;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CentreId::new(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn ten_centres_with_unique_ids() {
        let ids: std::collections::BTreeSet<_> = all().iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids.len(), 10);
        assert!(ids.contains("charleroi-thuin"));
        assert!(ids.contains("bruxelles"));
    }

    #[test]
    fn unknown_centre_is_refused_with_the_known_list() {
        let err = CentreId::new("atlantis").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("atlantis") && msg.contains("charleroi-thuin"),
            "{msg}"
        );
        assert_eq!(CentreId::new("namur").unwrap().centre().city, "Namur");
    }
}
