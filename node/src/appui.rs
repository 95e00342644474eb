//! Point d'appui repositories at one node: opening `appui/<scheme>` as this
//! centre, writing it in one transaction (marked local, so `sync` sends it to
//! the hub), and reading what staff and the publication need from it and from
//! the catalogue projection.
//!
//! Writes go through [`with_appui`]: load (or create, from the deterministic
//! genesis), one typed operation of `clps_model::docs::AppuiDoc`, then
//! `shared::store` with `local = true`, all inside one SQLite transaction.
//! A centre writes a repository only once it is listed among its members
//! (by `create`, `join` or a member's `invite`); the hub enforces the real
//! membership from its own configuration.
//!
//! Tool counts per theme are read from the catalogue projection, never typed:
//! the "131 outils" of a report is a query over `catalogue`/`catalogue_themes`.

use std::collections::{BTreeMap, BTreeSet};

use clps_model::CentreId;
use clps_model::docs::appui::{CoDocument, Event, SelectedTool, SelectionKey, ServiceEntry};
use clps_model::docs::catalogue::RecordId;
use clps_model::docs::{AppuiDoc, DocError, DocId};
use clps_model::vocab;
use rusqlite::{Connection, OptionalExtension};

use crate::shared;
use crate::store::StoreError;

/// The document type whose records are counted as teaching tools.
pub const TOOL_DOC_TYPE: &str = "outil_pedagogique";

/// What can go wrong with a point d'appui repository, in staff's words.
#[derive(Debug, thiserror::Error)]
pub enum AppuiError {
    #[error(
        "« {0} » n'est pas un nom de point d'appui valable (lettres minuscules, chiffres, - ou _)"
    )]
    BadScheme(String),
    #[error(
        "ce nœud n'a pas le dépôt du point d'appui « {0} » : créez-le (appui create) ou synchronisez après avoir été invité"
    )]
    NotHeld(String),
    #[error(
        "le dépôt du point d'appui « {0} » existe déjà : utilisez « appui join » pour en devenir membre"
    )]
    AlreadyExists(String),
    #[error(
        "le centre {centre} n'est pas membre du point d'appui « {scheme} » : demandez à un membre de l'inviter, puis « appui join »"
    )]
    NotMember { scheme: String, centre: CentreId },
    #[error(
        "« {0} » ressemble à l'adresse d'une personne (prénom.nom@…) : indiquez l'adresse générique de l'organisation (info@…, accueil@…)"
    )]
    PersonalEmail(String),
    #[error(
        "le champ « {0} » contient une adresse e-mail : un dépôt partagé ne contient jamais de données personnelles"
    )]
    PersonalData(&'static str),
    #[error("« {code} » n'est pas un code de la liste des {list} ; codes admis : {known}")]
    UnknownCode {
        list: &'static str,
        code: String,
        known: String,
    },
    #[error("« {0} » doit compter de 1 à 64 caractères parmi a-z, 0-9, - et _")]
    BadSlug(String),
    #[error("aucun document « {0} » dans ce dépôt")]
    NoDocument(String),
    #[error("le document « {id} » n'a pas de version nommée « {name} »")]
    NoVersion { id: String, name: String },
    #[error("dépôt partagé : {0}")]
    Doc(DocError),
}

impl From<AppuiError> for StoreError {
    fn from(e: AppuiError) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

/// Turns the model's (English, developer-facing) errors into staff's words
/// where staff can act on them; `email` is the contact address being written,
/// if any, so a refused address can be named.
pub fn french(e: DocError, email: Option<&str>) -> AppuiError {
    match e {
        DocError::PersonalData { field: "email" } => {
            AppuiError::PersonalEmail(email.unwrap_or_default().to_owned())
        }
        DocError::PersonalData { field } => AppuiError::PersonalData(field),
        DocError::UnknownCode { list, code } => {
            let v = vocab::get();
            let (french_list, codes) = match list {
                "requester_sectors" => ("secteurs", &v.requester_sectors),
                "themes" => ("thématiques", &v.themes),
                _ => (list, &v.themes),
            };
            let known = if french_list == list {
                String::new()
            } else {
                codes.codes().collect::<Vec<_>>().join(", ")
            };
            AppuiError::UnknownCode {
                list: french_list,
                code,
                known,
            }
        }
        DocError::BadSlug(s) => AppuiError::BadSlug(s),
        other => AppuiError::Doc(other),
    }
}

pub fn doc_id(scheme: &str) -> Result<DocId, AppuiError> {
    DocId::appui(scheme).map_err(|_| AppuiError::BadScheme(scheme.to_owned()))
}

/// Reads a repository this node holds.
pub fn open(conn: &Connection, scheme: &str) -> Result<AppuiDoc, StoreError> {
    let id = doc_id(scheme)?;
    let actor = shared::node_actor(conn)?;
    let doc = shared::load(conn, &id, &actor)?.ok_or_else(|| AppuiError::NotHeld(scheme.into()))?;
    Ok(AppuiDoc::from_automerge(scheme, doc, actor).map_err(|e| french(e, None))?)
}

/// How [`with_appui`] treats membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `create`: the repository must not hold members yet.
    Create,
    /// `join`: any node may list itself (the hub decides who may write).
    Join,
    /// Everything else: this centre must already be a member.
    Member,
}

/// Opens the repository as this node, runs `edit`, and stores the new
/// changes as local ones, in one transaction.
pub fn with_appui<T>(
    conn: &mut Connection,
    scheme: &str,
    access: Access,
    edit: impl FnOnce(&mut AppuiDoc) -> Result<T, AppuiError>,
) -> Result<T, StoreError> {
    let id = doc_id(scheme)?;
    let actor = shared::node_actor(conn)?;
    let centre = actor.centre.clone();
    // Load inside the (immediate) write transaction, see `shared::store`.
    let tx = conn.transaction()?;
    let existing = shared::load(&tx, &id, &actor)?;
    let held = existing.is_some();
    let automerge = match existing {
        Some(doc) => doc,
        None if access != Access::Member => shared::load_or_create(&tx, &id, &actor)?,
        None => return Err(AppuiError::NotHeld(scheme.into()).into()),
    };
    let mut doc =
        AppuiDoc::from_automerge(scheme, automerge, actor).map_err(|e| french(e, None))?;
    match access {
        Access::Create if held && !doc.members().is_empty() => {
            return Err(AppuiError::AlreadyExists(scheme.into()).into());
        }
        Access::Member if !doc.members().contains(&centre) => {
            return Err(AppuiError::NotMember {
                scheme: scheme.into(),
                centre,
            }
            .into());
        }
        _ => {}
    }
    doc.set_commit_time(shared::now());
    let before = doc.automerge_mut().get_heads();
    let out = edit(&mut doc)?;
    shared::store(&tx, &id, doc.automerge_mut(), &before, true)?;
    tx.commit()?;
    Ok(out)
}

/// The themes a scheme is about: its own theme code (the covid scheme's is
/// `pandemie`), and every theme its selections and directory use.
pub fn scheme_themes(doc: &AppuiDoc) -> BTreeSet<String> {
    let themes = &vocab::get().themes;
    let scheme = doc.scheme();
    let own = if scheme == "covid" {
        "pandemie".to_owned()
    } else {
        scheme
    };
    let mut out = BTreeSet::new();
    if themes.contains(&own) {
        out.insert(own);
    }
    out.extend(doc.selections().keys().map(|k| k.theme.clone()));
    for entry in doc.services() {
        out.extend(entry.themes);
    }
    out
}

/// Teaching tools of the catalogue per theme, and how many of them the
/// repository selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeCount {
    pub theme: String,
    pub label: String,
    /// Catalogue records of type `outil_pedagogique` carrying the theme
    /// (aliases of merged records left out).
    pub tools_in_catalogue: u64,
    /// Distinct tools this repository selected under the theme.
    pub selected: u64,
}

pub fn tool_counts(conn: &Connection, doc: &AppuiDoc) -> Result<Vec<ThemeCount>, StoreError> {
    let selections = doc.selections();
    let mut stmt = conn.prepare_cached(
        "SELECT count(DISTINCT c.record_id) FROM catalogue c
         JOIN catalogue_themes t ON t.record_id = c.record_id
         WHERE t.theme = ?1 AND c.doc_type = ?2 AND c.merged_into IS NULL",
    )?;
    let mut out = Vec::new();
    for theme in scheme_themes(doc) {
        let n: i64 = stmt.query_row([theme.as_str(), TOOL_DOC_TYPE], |r| r.get(0))?;
        let selected: BTreeSet<&RecordId> = selections
            .iter()
            .filter(|(k, _)| k.theme == theme)
            .flat_map(|(_, tools)| tools.keys())
            .collect();
        out.push(ThemeCount {
            label: theme_label(&theme),
            theme,
            tools_in_catalogue: u64::try_from(n).unwrap_or(0),
            selected: selected.len() as u64,
        });
    }
    Ok(out)
}

pub fn theme_label(code: &str) -> String {
    vocab::get().themes.label(code).unwrap_or(code).to_owned()
}

/// A catalogue record as a selection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolInfo {
    pub title: String,
    pub doc_type: String,
    pub publisher: String,
    pub year: Option<i64>,
}

/// Looks selected records up in the catalogue projection; a record this node
/// has not received yet is absent from the map.
pub fn tool_infos<'a>(
    conn: &Connection,
    ids: impl IntoIterator<Item = &'a RecordId>,
) -> Result<BTreeMap<RecordId, ToolInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT title, doc_type, publisher, year FROM catalogue WHERE record_id = ?1",
    )?;
    let mut out = BTreeMap::new();
    for id in ids {
        let info = stmt
            .query_row([id.as_str()], |r| {
                Ok(ToolInfo {
                    title: r.get(0)?,
                    doc_type: r.get(1)?,
                    publisher: r.get(2)?,
                    year: r.get(3)?,
                })
            })
            .optional()?;
        if let Some(info) = info {
            out.insert(id.clone(), info);
        }
    }
    Ok(out)
}

/// A co-written document at a named version, or as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentVersion {
    pub id: String,
    pub title: String,
    /// `None`: the current text.
    pub version: Option<String>,
    pub text: String,
}

pub fn document_version(
    doc: &AppuiDoc,
    id: &str,
    version: Option<&str>,
) -> Result<DocumentVersion, AppuiError> {
    let document: CoDocument = doc
        .documents()
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| AppuiError::NoDocument(id.to_owned()))?;
    let text = match version {
        None => document.body,
        Some(name) => doc
            .version_text(id, name)
            .map_err(|e| french(e, None))?
            .ok_or_else(|| AppuiError::NoVersion {
                id: id.to_owned(),
                name: name.to_owned(),
            })?,
    };
    Ok(DocumentVersion {
        id: id.to_owned(),
        title: document.title,
        version: version.map(str::to_owned),
        text,
    })
}

/// Everything a publication of a repository shows, read in one go.
#[derive(Debug, Clone)]
pub struct Publication {
    pub scheme: String,
    /// « Point d'appui EVRAS », or the scheme code for a scheme outside the
    /// shared list.
    pub scheme_label: String,
    pub members: BTreeSet<CentreId>,
    pub services: Vec<ServiceEntry>,
    pub selections: BTreeMap<SelectionKey, BTreeMap<RecordId, SelectedTool>>,
    pub tools: BTreeMap<RecordId, ToolInfo>,
    pub counts: Vec<ThemeCount>,
    pub events: Vec<Event>,
    pub document: Option<DocumentVersion>,
}

pub fn publication(
    conn: &Connection,
    scheme: &str,
    document: Option<(&str, Option<&str>)>,
) -> Result<Publication, StoreError> {
    let doc = open(conn, scheme)?;
    let selections = doc.selections();
    let tools = tool_infos(conn, selections.values().flat_map(|t| t.keys()))?;
    let document = match document {
        Some((id, version)) => Some(document_version(&doc, id, version)?),
        None => None,
    };
    Ok(Publication {
        scheme: scheme.to_owned(),
        scheme_label: scheme_label(scheme),
        members: doc.members(),
        services: doc.services(),
        counts: tool_counts(conn, &doc)?,
        selections,
        tools,
        events: doc.events(),
        document,
    })
}

pub fn scheme_label(scheme: &str) -> String {
    vocab::get()
        .points_d_appui
        .label(scheme)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Point d'appui {scheme}"))
}
