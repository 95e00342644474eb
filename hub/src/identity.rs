//! Who is calling: the typed identity carried in a federation certificate.
//!
//! Certificates issued by `clps-hub pki issue` carry exactly one URI SAN,
//! `clps://centre/<centre-id>` or `clps://committee/<name>`. The TLS layer
//! extracts it once, at accept time, from the verified peer certificate; the
//! RPC handlers only ever see an [`Identity`], never a certificate.

use std::fmt;

use clps_model::{CentreId, UnknownCentre};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const CENTRE_PREFIX: &str = "clps://centre/";
const COMMITTEE_PREFIX: &str = "clps://committee/";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// One of the ten centres: may write where its spaces allow.
    Centre(CentreId),
    /// An inter-CLPS committee: reads every space, never writes.
    Committee(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificat illisible")]
    Parse,
    #[error("le certificat ne porte aucune identité clps://")]
    Missing,
    #[error("le certificat porte plus d'une identité clps://")]
    Ambiguous,
    #[error("identité inconnue « {0} »")]
    Uri(String),
    #[error(
        "le nom de comité « {0} » doit compter 1 à 64 caractères parmi a-z, 0-9, « - » et « _ »"
    )]
    CommitteeName(String),
    #[error(transparent)]
    Centre(#[from] UnknownCentre),
}

/// Committee names follow the same rule as document keys.
pub fn valid_committee_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::CommitteeName(name.to_owned()))
    }
}

impl Identity {
    /// The URI written in the certificate's SAN.
    pub fn uri(&self) -> String {
        match self {
            Identity::Centre(c) => format!("{CENTRE_PREFIX}{c}"),
            Identity::Committee(n) => format!("{COMMITTEE_PREFIX}{n}"),
        }
    }

    pub fn from_uri(uri: &str) -> Result<Identity, IdentityError> {
        if let Some(id) = uri.strip_prefix(CENTRE_PREFIX) {
            Ok(Identity::Centre(CentreId::new(id)?))
        } else if let Some(name) = uri.strip_prefix(COMMITTEE_PREFIX) {
            valid_committee_name(name)?;
            Ok(Identity::Committee(name.to_owned()))
        } else {
            Err(IdentityError::Uri(uri.to_owned()))
        }
    }

    /// Reads the identity from a DER certificate that rustls has already
    /// verified against the federation CA.
    pub fn from_cert_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Parse)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Parse)?
            .ok_or(IdentityError::Missing)?;
        let mut found = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("clps://") => Some(*uri),
                _ => None,
            });
        let uri = found.next().ok_or(IdentityError::Missing)?;
        if found.next().is_some() {
            return Err(IdentityError::Ambiguous);
        }
        Identity::from_uri(uri)
    }

    pub fn is_committee(&self) -> bool {
        matches!(self, Identity::Committee(_))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Centre(c) => write!(f, "centre/{c}"),
            Identity::Committee(n) => write!(f, "committee/{n}"),
        }
    }
}

/// How many of something (sessions, connections) each identity holds, with
/// a cap: [`PerIdentity::take`] hands out a [`Slot`] that gives its place
/// back when dropped.
#[derive(Debug, Clone, Default)]
pub struct PerIdentity {
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Identity, usize>>>,
}

/// One place held by an identity in a [`PerIdentity`] count.
#[derive(Debug)]
pub struct Slot {
    identity: Identity,
    open: PerIdentity,
}

impl PerIdentity {
    /// A place for `identity`, or `None` when it already holds `cap`.
    pub fn take(&self, identity: &Identity, cap: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(identity.clone()).or_insert(0);
        if *n >= cap.max(1) {
            return None;
        }
        *n += 1;
        Some(Slot {
            identity: identity.clone(),
            open: self.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.identity) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uris_round_trip_and_bad_ones_fail() {
        for uri in ["clps://centre/namur", "clps://committee/inter-clps"] {
            assert_eq!(Identity::from_uri(uri).unwrap().uri(), uri);
        }
        assert!(Identity::from_uri("clps://centre/atlantis").is_err());
        assert!(Identity::from_uri("clps://committee/Bad Name").is_err());
        assert!(Identity::from_uri("https://centre/namur").is_err());
    }
}
