//! A centre's published statistics (`stats/<centre>`): the container, its
//! schema version and a flat table of aggregate counts. Only the centre named
//! in the id writes it (the hub refuses any other author, see `validate`);
//! every centre and the committees read it. The tables themselves (which
//! cross tables, which code lists) come with the statistics issue.
//!
//! ```text
//! centre  : str
//! figures : { "<year>/<table>/<cell>" : uint }
//! ```
//!
//! Counts only: nothing below the level of an aggregate ever enters here.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

use crate::actor::CentreActor;
use crate::centres::CentreId;
use crate::docs::ids::DocId;
use crate::docs::schema::{self, DocError, check_slug, get_obj, get_str, get_u64, one_change};

const CENTRE: &str = "centre";
const FIGURES: &str = "figures";
pub(crate) const FIGURES_KEY: &str = FIGURES;

pub(crate) fn genesis_content(doc: &mut AutoCommit, centre: &CentreId) -> Result<(), DocError> {
    doc.put(ROOT, CENTRE, centre.as_str())?;
    doc.put_object(ROOT, FIGURES, ObjType::Map)?;
    Ok(())
}

/// One aggregate cell: a year, a table and a cell within it, all slugs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FigureKey {
    pub year: u16,
    pub table: String,
    pub cell: String,
}

/// The tables a centre publishes (see `clps-node`'s `publish`).
pub const TABLES: [&str; 12] = [
    "req_sector",
    "req_theme",
    "req_profession",
    "req_contact",
    "loans",
    "acc_scheme",
    "acc_theme",
    "acc_axis",
    "events",
    "event_org",
    "event_partners",
    "holdings",
];

/// A figure as the validation gate accepts it: a known table, a cell of
/// slugs (codes, months, event keys) and, for co-organisers, a centre id:
/// counts only, no name of anything local.
pub fn check_figure_key(year: u16, table: &str, cell: &str) -> Result<(), String> {
    if year == 0 || !TABLES.contains(&table) {
        return Err(format!("« {table} » is not a published table"));
    }
    check_slug(cell).map_err(|e| e.to_string())?;
    if table == "event_org" {
        let organiser = cell.rsplit(crate::stats::SEP).next().unwrap_or("");
        if CentreId::new(organiser).is_err() {
            return Err("a co-organiser is named by its centre id only".to_owned());
        }
    }
    Ok(())
}

/// One write in `figures`, by the document's centre.
pub(crate) fn check_figure_write(
    key: Option<&str>,
    action: &automerge::legacy::OpType,
) -> Result<(), String> {
    use automerge::ScalarValue;
    use automerge::legacy::OpType;
    let key = key.ok_or_else(|| "figures is a map".to_owned())?;
    let mut parts = key.splitn(3, '/');
    let year = parts
        .next()
        .and_then(|y| y.parse::<u16>().ok())
        .ok_or_else(|| format!("« {key} » does not start with a year"))?;
    let (table, cell) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    check_figure_key(year, table, cell)?;
    match action {
        OpType::Put(ScalarValue::Uint(_)) | OpType::Delete => Ok(()),
        OpType::Put(ScalarValue::Int(n)) if *n >= 0 => Ok(()),
        _ => Err("a figure is a count".to_owned()),
    }
}

/// A centre's statistics document, opened for writing by that centre.
#[derive(Debug)]
pub struct StatsDoc {
    doc: AutoCommit,
    doc_id: DocId,
    time: i64,
}

impl StatsDoc {
    /// The centre's own statistics document; fails for any other centre's.
    pub fn create(actor: CentreActor) -> Result<StatsDoc, DocError> {
        let doc_id = DocId::stats(actor.centre.clone());
        let doc = schema::create_doc(&doc_id, &actor)?;
        Ok(StatsDoc {
            doc,
            doc_id,
            time: 0,
        })
    }

    /// Loads the actor's own statistics document for writing.
    pub fn load(bytes: &[u8], actor: CentreActor) -> Result<StatsDoc, DocError> {
        let doc_id = DocId::stats(actor.centre.clone());
        let doc = schema::load_doc(&doc_id, bytes, &actor)?;
        Ok(StatsDoc {
            doc,
            doc_id,
            time: 0,
        })
    }

    pub fn doc_id(&self) -> &DocId {
        &self.doc_id
    }

    pub fn set_commit_time(&mut self, unix_seconds: i64) {
        self.time = unix_seconds;
    }

    pub fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    pub fn automerge_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Publishes a batch of counts as one change.
    pub fn set_figures(&mut self, figures: &BTreeMap<FigureKey, u64>) -> Result<(), DocError> {
        for key in figures.keys() {
            check_figure_key(key.year, &key.table, &key.cell).map_err(DocError::Invalid)?;
        }
        let obj = schema::root_obj(&self.doc, FIGURES)?;
        one_change(&mut self.doc, self.time, "figures".to_owned(), |doc| {
            for (key, value) in figures {
                doc.put(
                    &obj,
                    format!("{}/{}/{}", key.year, key.table, key.cell),
                    *value,
                )?;
            }
            Ok(())
        })
    }

    pub fn figures(&self) -> BTreeMap<FigureKey, u64> {
        figures(&self.doc)
    }
}

/// The centre a statistics document belongs to.
pub fn centre<R: ReadDoc>(doc: &R) -> Option<CentreId> {
    get_str(doc, &ROOT, CENTRE).and_then(|c| CentreId::new(&c).ok())
}

/// The counts of any centre's statistics document.
pub fn figures<R: ReadDoc>(doc: &R) -> BTreeMap<FigureKey, u64> {
    let Some(obj) = get_obj(doc, &ROOT, FIGURES) else {
        return BTreeMap::new();
    };
    doc.keys(&obj)
        .filter_map(|key| {
            let mut parts = key.splitn(3, '/');
            let year = parts.next()?.parse().ok()?;
            let table = parts.next()?.to_owned();
            let cell = parts.next()?.to_owned();
            let value = get_u64(doc, &obj, &key)?;
            Some((FigureKey { year, table, cell }, value))
        })
        .collect()
}
