//! Document and space identifiers, parsed and validated at every boundary.

use std::fmt;

use crate::centres::CentreId;

/// How many documents the catalogue is split into. Records hash to a bucket
/// by their id; see `ARCHITECTURE.md` for the measurements behind the number.
pub const CATALOGUE_BUCKETS: u16 = 256;

/// The kind of a shared document, which fixes its schema and its space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    Catalogue { bucket: u16 },
    Appui { scheme: String },
    Survey { survey: String },
    Stats { centre: CentreId },
}

/// A validated document id such as `catalogue/017` or `stats/namur`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId {
    kind: DocKind,
}

/// A space: the unit of membership and access at the hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocIdError {
    #[error("document id « {0} » is not of the form kind/key")]
    Shape(String),
    #[error("unknown document kind « {0} »")]
    Kind(String),
    #[error("catalogue bucket « {0} » is not a number below {CATALOGUE_BUCKETS}")]
    Bucket(String),
    #[error("key « {0} » must be 1 to 64 characters of a-z, 0-9, '-' or '_'")]
    Key(String),
    #[error(transparent)]
    Centre(#[from] crate::centres::UnknownCentre),
}

/// What an error shows of an invalid input: a short prefix, never the
/// whole of what a peer sent (a 4 MiB id must not come back in the reply).
fn shown(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.chars().count() <= SHOWN {
        s.to_owned()
    } else {
        s.chars().take(SHOWN).collect::<String>() + "…"
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl DocId {
    pub fn catalogue(bucket: u16) -> DocId {
        DocId {
            kind: DocKind::Catalogue {
                bucket: bucket % CATALOGUE_BUCKETS,
            },
        }
    }

    pub fn stats(centre: CentreId) -> DocId {
        DocId {
            kind: DocKind::Stats { centre },
        }
    }

    pub fn appui(scheme: &str) -> Result<DocId, DocIdError> {
        if !valid_key(scheme) {
            return Err(DocIdError::Key(shown(scheme)));
        }
        Ok(DocId {
            kind: DocKind::Appui {
                scheme: scheme.to_owned(),
            },
        })
    }

    pub fn survey(survey: &str) -> Result<DocId, DocIdError> {
        if !valid_key(survey) {
            return Err(DocIdError::Key(shown(survey)));
        }
        Ok(DocId {
            kind: DocKind::Survey {
                survey: survey.to_owned(),
            },
        })
    }

    pub fn parse(s: &str) -> Result<DocId, DocIdError> {
        let (kind, key) = s
            .split_once('/')
            .ok_or_else(|| DocIdError::Shape(shown(s)))?;
        match kind {
            "catalogue" => {
                let bucket: u16 = key
                    .parse()
                    .ok()
                    // Only the canonical spelling: `+53` or ` 53` would
                    // name catalogue/053 under another id.
                    .filter(|b| {
                        *b < CATALOGUE_BUCKETS
                            && key.len() == 3
                            && key.bytes().all(|c| c.is_ascii_digit())
                    })
                    .ok_or_else(|| DocIdError::Bucket(shown(key)))?;
                Ok(DocId::catalogue(bucket))
            }
            "appui" => DocId::appui(key),
            "survey" => DocId::survey(key),
            "stats" => Ok(DocId::stats(CentreId::new(key)?)),
            other => Err(DocIdError::Kind(shown(other))),
        }
    }

    pub fn kind(&self) -> &DocKind {
        &self.kind
    }

    /// The space whose membership governs access to this document.
    pub fn space(&self) -> SpaceId {
        SpaceId(match &self.kind {
            DocKind::Catalogue { .. } => "catalogue".to_owned(),
            DocKind::Appui { scheme } => format!("appui:{scheme}"),
            DocKind::Survey { survey } => format!("survey:{survey}"),
            DocKind::Stats { .. } => "stats".to_owned(),
        })
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DocKind::Catalogue { bucket } => write!(f, "catalogue/{bucket:03}"),
            DocKind::Appui { scheme } => write!(f, "appui/{scheme}"),
            DocKind::Survey { survey } => write!(f, "survey/{survey}"),
            DocKind::Stats { centre } => write!(f, "stats/{centre}"),
        }
    }
}

impl SpaceId {
    pub fn catalogue() -> SpaceId {
        SpaceId("catalogue".to_owned())
    }
    pub fn stats() -> SpaceId {
        SpaceId("stats".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Parses `catalogue`, `stats`, `appui:<scheme>` or `survey:<id>`.
    pub fn parse(s: &str) -> Result<SpaceId, DocIdError> {
        match s.split_once(':') {
            None if s == "catalogue" || s == "stats" => Ok(SpaceId(s.to_owned())),
            Some(("appui" | "survey", key)) if valid_key(key) => Ok(SpaceId(s.to_owned())),
            Some((_, key)) if !valid_key(key) => Err(DocIdError::Key(shown(key))),
            _ => Err(DocIdError::Kind(shown(s))),
        }
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_map_to_spaces() {
        for s in [
            "catalogue/007",
            "appui/evras",
            "survey/pcs-2020",
            "stats/namur",
        ] {
            assert_eq!(DocId::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            DocId::parse("appui/evras").unwrap().space().as_str(),
            "appui:evras"
        );
        assert_eq!(
            DocId::parse("catalogue/255").unwrap().space(),
            SpaceId::catalogue()
        );
        assert!(DocId::parse("catalogue/256").is_err());
        assert!(DocId::parse("catalogue/7").is_err());
        // Only the canonical spelling of a bucket.
        for other in ["catalogue/+53", "catalogue/ 53", "catalogue/-01"] {
            assert!(DocId::parse(other).is_err(), "{other}");
        }
        // An error shows a short prefix of what was sent, not all of it.
        let huge = format!("appui/{}", "x".repeat(4 * 1024 * 1024));
        let shown = DocId::parse(&huge).unwrap_err().to_string();
        assert!(shown.len() < 200, "{} bytes", shown.len());
        assert!(DocId::parse("stats/atlantis").is_err());
        assert!(DocId::parse("survey/../etc").is_err());
        assert!(DocId::parse("nothing").is_err());
        assert!(SpaceId::parse("appui:evras").is_ok());
        assert!(SpaceId::parse("appui:").is_err());
    }
}
