//! Published facts carried into the project as seed data: one centre's 2021
//! activity figures (the calibration), the teaching tools the reports name,
//! and the 2020 joint survey of the *Plans de Cohésion Sociale*. Embedded at
//! build time; the product never reads `../shared` at run time.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `calibration-charleroi-thuin-2021.json`, as published.
/// Sizes of the other centres' years relative to the calibrated
/// Charleroi-Thuin 2021 (invented: only Charleroi-Thuin's figures are
/// published). Used by the main job, the benchmarks and the tests.
pub const RELATIVE_SIZES: [(&str, f64); 9] = [
    ("brabant-wallon", 0.6),
    ("hainaut-occidental", 0.7),
    ("huy-waremme", 0.45),
    ("liege", 1.1),
    ("luxembourg", 0.55),
    ("mons-soignies", 0.8),
    ("namur", 0.75),
    ("verviers", 0.4),
    ("bruxelles", 1.2),
];

/// A centre's size relative to Charleroi-Thuin (1.0 for Charleroi-Thuin).
pub fn relative_size(centre: &str) -> f64 {
    RELATIVE_SIZES
        .iter()
        .find(|(c, _)| *c == centre)
        .map_or(1.0, |(_, s)| *s)
}

pub const CALIBRATION_JSON: &str = include_str!("../data/calibration-charleroi-thuin-2021.json");
/// `tools-named-in-reports.json`.
pub const TOOLS_JSON: &str = include_str!("../data/tools-named-in-reports.json");
/// `pcs-survey-2020.json`.
pub const PCS_SURVEY_JSON: &str = include_str!("../data/pcs-survey-2020.json");

/// Cells of one published cross table: row code → service type code → count.
pub type Cells = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Clone, Deserialize)]
pub struct PublishedTable {
    pub base: String,
    pub cells: Cells,
    pub total: u64,
    pub column_totals: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Requests {
    pub total_requests: u64,
    pub by_sector: PublishedTable,
    pub by_theme: PublishedTable,
    pub by_profession: PublishedTable,
    pub by_contact_mode: PublishedTable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Loans {
    pub physical_supports_lent: u64,
    pub by_document_type: BTreeMap<String, u64>,
    pub by_theme_top: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Accompaniments {
    pub total: u64,
    pub by_scheme: BTreeMap<String, u64>,
    pub by_axis: BTreeMap<String, u64>,
    pub by_theme_top: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Holdings {
    pub total: u64,
    pub by_document_type: BTreeMap<String, u64>,
}

/// The parts of the calibration file the project uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Calibration {
    pub centre: String,
    pub year: i32,
    pub requests: Requests,
    pub loans: Loans,
    pub accompaniments: Accompaniments,
    pub holdings: Holdings,
}

/// The parsed calibration.
pub fn calibration() -> &'static Calibration {
    static CAL: std::sync::OnceLock<Calibration> = std::sync::OnceLock::new();
    CAL.get_or_init(|| {
        // Embedded at build time and checked by a unit test.
        #[allow(clippy::expect_used)]
        serde_json::from_str(CALIBRATION_JSON).expect("embedded calibration is valid")
    })
}

/// A teaching tool named in the centres' reports.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedTool {
    pub title: String,
    #[serde(default)]
    pub creator: Option<String>,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub themes: Vec<String>,
    #[serde(default)]
    pub public: Option<String>,
    #[serde(default)]
    pub year: Option<i32>,
    #[serde(default)]
    pub created_by_centre: Option<String>,
}

#[derive(Deserialize)]
struct ToolsFile {
    tools: Vec<NamedTool>,
}

/// The real tools the reports name.
pub fn named_tools() -> Vec<NamedTool> {
    serde_json::from_str::<ToolsFile>(TOOLS_JSON)
        .map(|f| f.tools)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_parses_and_uses_known_codes() {
        let cal = calibration();
        let v = crate::vocab::get();
        assert_eq!(cal.requests.total_requests, 785);
        for (sector, row) in &cal.requests.by_sector.cells {
            assert!(v.requester_sectors.contains(sector), "{sector}");
            for service in row.keys() {
                assert!(v.service_types.contains(service), "{service}");
            }
        }
        for theme in cal.requests.by_theme.cells.keys() {
            assert!(v.themes.contains(theme), "{theme}");
        }
        assert_eq!(named_tools().len(), 21);
    }
}
