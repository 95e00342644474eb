//! The network's shared code lists, embedded from `data/vocabularies.json`
//! (version 1). Codes are stable identifiers stored in databases and shared
//! documents; labels are the French words staff and committees read. The order
//! of each list is the order of the published tables, and every table the
//! project prints follows it.

use std::sync::OnceLock;

use serde::Deserialize;

const VOCABULARIES_JSON: &str = include_str!("../data/vocabularies.json");

/// One entry of a code list.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    pub label: String,
    #[serde(default)]
    pub since: Option<u16>,
}

/// An ordered code list.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct CodeList(pub Vec<Code>);

impl CodeList {
    pub fn contains(&self, code: &str) -> bool {
        self.0.iter().any(|c| c.code == code)
    }

    pub fn label(&self, code: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|c| c.code == code)
            .map(|c| c.label.as_str())
    }

    /// Position of a code in the published order.
    pub fn index(&self, code: &str) -> Option<usize> {
        self.0.iter().position(|c| c.code == code)
    }

    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.code.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// All shared code lists.
#[derive(Debug, Clone, Deserialize)]
pub struct Vocabularies {
    pub version: u32,
    pub service_types: CodeList,
    pub requester_sectors: CodeList,
    pub requester_professions: CodeList,
    pub contact_modes: CodeList,
    pub themes: CodeList,
    pub document_types: CodeList,
    pub accompaniment_axes: CodeList,
    pub points_d_appui: CodeList,
    pub ottawa_axes: CodeList,
    pub determinant_layers: CodeList,
}

/// The accompaniment schemes: the general one plus each point d'appui.
pub const SCHEMES: [&str; 4] = ["general", "assuetudes", "evras", "covid"];

/// The embedded code lists.
pub fn get() -> &'static Vocabularies {
    static VOCAB: OnceLock<Vocabularies> = OnceLock::new();
    VOCAB.get_or_init(|| {
        // Embedded at build time and checked by a unit test.
        #[allow(clippy::expect_used)]
        serde_json::from_str(VOCABULARIES_JSON).expect("embedded vocabularies.json is valid")
    })
}

/// The raw embedded file, for nodes that record which version they seeded.
pub fn raw_json() -> &'static str {
    VOCABULARIES_JSON
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_load_in_published_order() {
        let v = get();
        assert_eq!(v.version, 1);
        assert_eq!(v.service_types.len(), 8);
        assert_eq!(v.service_types.0[0].code, "pret");
        assert_eq!(v.requester_sectors.len(), 20);
        assert_eq!(v.themes.len(), 27);
        assert_eq!(v.themes.label("assuetudes"), Some("Assuétudes"));
        assert_eq!(v.requester_sectors.index("ne_sais_pas"), Some(19));
        assert_eq!(v.points_d_appui.0[1].since, Some(2013));
    }
}
