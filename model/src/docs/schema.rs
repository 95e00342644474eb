//! What every shared document has in common: the root keys `kind`,
//! `schema_version` and `doc_id`, the deterministic genesis change that creates
//! them, and small typed read helpers used by the schema modules.
//!
//! # Why a deterministic genesis
//!
//! Automerge merges two maps created concurrently under the same key as a
//! *conflict*: one map wins and the other's content disappears from view. If
//! two centres each created `catalogue/017` offline and each put its own
//! `records` map at the root, half the records would vanish after the merge.
//! So the root and its containers are created by one change that every node
//! builds byte for byte the same way: a fixed actor ([`genesis_actor`]), time 0,
//! no dependencies, and content that depends only on the document id. Identical
//! changes have identical hashes, so every replica shares the same genesis and
//! the same container objects. The hub accepts this change from anyone because
//! it is fully determined by the document id (see `validate`).
//!
//! Below the containers the schemas avoid creating objects under keys that two
//! writers could choose at once: per-record containers are created with the
//! record (record ids carry caller entropy), and per-centre or per-organisation
//! entries are flat composite keys holding scalars, never nested maps.

use std::collections::BTreeSet;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::actor::CentreActor;
use crate::docs::ids::{DocId, DocKind};

/// The schema version written at the root of every document this crate creates.
pub const SCHEMA_VERSION: u64 = 1;

pub(crate) const KEY_KIND: &str = "kind";
pub(crate) const KEY_SCHEMA_VERSION: &str = "schema_version";
pub(crate) const KEY_DOC_ID: &str = "doc_id";

/// Errors of the typed document API.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("automerge operation failed")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("document is a « {found} » document, expected « {expected} »")]
    WrongKind { expected: String, found: String },
    #[error("document schema version {0} is newer than this program understands")]
    SchemaTooNew(u64),
    #[error("document was made for « {found} », expected « {expected} »")]
    WrongDocument { expected: String, found: String },
    #[error("record {0} is not in this document")]
    UnknownRecord(String),
    #[error("record {0} already exists")]
    RecordExists(String),
    #[error("record {record} belongs in bucket {expected}, not in this document")]
    WrongBucket { record: String, expected: u16 },
    #[error("« {code} » is not a code of the {list} list")]
    UnknownCode { list: &'static str, code: String },
    #[error("« {0} » must be 1 to 64 characters of a-z, 0-9, '-' or '_'")]
    BadSlug(String),
    #[error(
        "field {field} looks like it holds an e-mail address or a phone number; shared documents never hold personal data"
    )]
    PersonalData { field: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("only centre {owner} may write this document")]
    NotOwner { owner: String },
}

/// The actor of every genesis change. Its first byte is 0, so it never parses
/// as a centre actor: no centre can write further changes under it.
pub fn genesis_actor() -> ActorId {
    ActorId::from(b"\x00clps-genesis".to_vec())
}

/// The schema version a kind of document is written in: survey documents
/// are at [`crate::docs::survey::SURVEY_SCHEMA_VERSION`], the others at
/// [`SCHEMA_VERSION`].
pub fn kind_schema_version(kind: &DocKind) -> u64 {
    match kind {
        DocKind::Survey { .. } => crate::docs::survey::SURVEY_SCHEMA_VERSION,
        _ => SCHEMA_VERSION,
    }
}

/// The name stored under `kind` at the root.
pub fn kind_name(kind: &DocKind) -> &'static str {
    match kind {
        DocKind::Catalogue { .. } => "catalogue",
        DocKind::Appui { .. } => "appui",
        DocKind::Survey { .. } => "survey",
        DocKind::Stats { .. } => "stats",
    }
}

/// Builds the document as it is right after its genesis change.
pub fn genesis_doc(doc_id: &DocId) -> Result<AutoCommit, DocError> {
    let mut doc = AutoCommit::new().with_actor(genesis_actor());
    doc.put(ROOT, KEY_KIND, kind_name(doc_id.kind()))?;
    doc.put(ROOT, KEY_SCHEMA_VERSION, kind_schema_version(doc_id.kind()))?;
    doc.put(ROOT, KEY_DOC_ID, doc_id.to_string())?;
    match doc_id.kind() {
        DocKind::Catalogue { .. } => crate::docs::catalogue::genesis_content(&mut doc)?,
        DocKind::Appui { scheme } => crate::docs::appui::genesis_content(&mut doc, scheme)?,
        DocKind::Survey { survey } => crate::docs::survey::genesis_content(&mut doc, survey)?,
        DocKind::Stats { centre } => crate::docs::stats::genesis_content(&mut doc, centre)?,
    }
    // Time 0 and no message: the change must not depend on when or where it
    // was built.
    doc.commit_with(CommitOptions::default().with_time(0));
    Ok(doc)
}

/// The genesis change of a document, identical on every node.
pub fn genesis_change(doc_id: &DocId) -> Result<Change, DocError> {
    let mut doc = genesis_doc(doc_id)?;
    doc.get_last_local_change()
        .ok_or_else(|| DocError::Invalid("genesis produced no change".to_owned()))
}

/// A fresh document for `doc_id` that `actor` writes to.
pub fn create_doc(doc_id: &DocId, actor: &CentreActor) -> Result<AutoCommit, DocError> {
    Ok(genesis_doc(doc_id)?.with_actor(actor.actor_id()))
}

/// Loads saved bytes, checks they are the document `doc_id` in a schema
/// version this code understands, and sets `actor` for further writes.
///
/// Bytes that lack the genesis (e.g. an incremental save of later changes
/// only) are completed with it, so loading never depends on which node made
/// the document first.
pub fn load_doc(doc_id: &DocId, bytes: &[u8], actor: &CentreActor) -> Result<AutoCommit, DocError> {
    load_doc_with(doc_id, bytes, AutoCommit::load(bytes).ok(), actor)
}

/// [`load_doc`] for bytes already loaded with `AutoCommit::load` (`loaded`,
/// `None` if that failed), e.g. on another thread while this one was busy.
pub fn load_doc_with(
    doc_id: &DocId,
    bytes: &[u8],
    loaded: Option<AutoCommit>,
    actor: &CentreActor,
) -> Result<AutoCommit, DocError> {
    // A saved document that holds its genesis (the usual case) loads in one
    // pass; replaying it onto a genesis document applies its changes one by
    // one, several times slower on a large catalogue bucket.
    let mut genesis = genesis_doc(doc_id)?;
    let genesis_hash = genesis.get_heads();
    let direct = loaded.filter(|doc| {
        genesis_hash
            .iter()
            .all(|h| doc.get_change_by_hash(h).is_some())
    });
    let doc = match direct {
        Some(doc) => doc,
        None => {
            let mut doc = genesis;
            doc.load_incremental(bytes)?;
            doc
        }
    };
    let doc = doc.with_actor(actor.actor_id());
    check_root(&doc, doc_id)?;
    Ok(doc)
}

/// Checks the root keys against `doc_id`.
pub fn check_root<R: ReadDoc>(doc: &R, doc_id: &DocId) -> Result<(), DocError> {
    let expected = kind_name(doc_id.kind());
    let found = get_str(doc, &ROOT, KEY_KIND).unwrap_or_default();
    if found != expected {
        return Err(DocError::WrongKind {
            expected: expected.to_owned(),
            found,
        });
    }
    let version = get_u64(doc, &ROOT, KEY_SCHEMA_VERSION).unwrap_or(0);
    if version > kind_schema_version(doc_id.kind()) {
        return Err(DocError::SchemaTooNew(version));
    }
    let id = get_str(doc, &ROOT, KEY_DOC_ID).unwrap_or_default();
    if id != doc_id.to_string() {
        return Err(DocError::WrongDocument {
            expected: doc_id.to_string(),
            found: id,
        });
    }
    Ok(())
}

/// `schema_version` at the root, 0 when absent.
pub fn schema_version<R: ReadDoc>(doc: &R) -> u64 {
    get_u64(doc, &ROOT, KEY_SCHEMA_VERSION).unwrap_or(0)
}

/// Runs `ops` as one change: committed when they all succeed, rolled back
/// otherwise, so a logical operation never leaves half its fields behind.
pub(crate) fn one_change<T>(
    doc: &mut AutoCommit,
    time: i64,
    message: String,
    ops: impl FnOnce(&mut AutoCommit) -> Result<T, DocError>,
) -> Result<T, DocError> {
    // A transaction left open by a caller would otherwise be folded into ours.
    let _ = doc.get_heads();
    match ops(doc) {
        Ok(value) => {
            doc.commit_with(
                CommitOptions::default()
                    .with_time(time)
                    .with_message(message),
            );
            Ok(value)
        }
        Err(err) => {
            doc.rollback();
            Err(err)
        }
    }
}

pub(crate) fn get_obj<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    }
}

pub(crate) fn root_obj<R: ReadDoc>(doc: &R, key: &str) -> Result<ObjId, DocError> {
    get_obj(doc, &ROOT, key)
        .ok_or_else(|| DocError::Invalid(format!("document has no « {key} » container")))
}

pub(crate) fn get_scalar<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => Some(s.into_owned()),
        _ => None,
    }
}

pub(crate) fn get_str<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn get_u64<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<u64> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::Uint(n) => Some(n),
        ScalarValue::Int(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

pub(crate) fn get_bool<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<bool> {
    match get_scalar(doc, obj, key)? {
        ScalarValue::Boolean(b) => Some(b),
        _ => None,
    }
}

pub(crate) fn get_text<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> String {
    get_obj(doc, obj, key)
        .and_then(|text| doc.text(&text).ok())
        .unwrap_or_default()
}

/// The keys of a set stored as a map `member -> true`.
pub(crate) fn set_members<R: ReadDoc>(doc: &R, obj: &ObjId) -> BTreeSet<String> {
    doc.keys(obj).collect()
}

/// Every distinct competing value of a map key, the winner first; empty or a
/// single value when there is no conflict.
pub(crate) fn competing_values<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Vec<String> {
    let winner = get_scalar(doc, obj, key).map(|v| render(&v));
    let mut values: Vec<String> = winner.into_iter().collect();
    if let Ok(all) = doc.get_all(obj, key) {
        for (value, _) in all {
            let rendered = match value {
                Value::Scalar(s) => render(&s),
                Value::Object(t) => format!("<{t}>"),
            };
            if !values.contains(&rendered) {
                values.push(rendered);
            }
        }
    }
    values
}

/// Renders a scalar for a data steward: strings bare, the rest as Automerge
/// prints them.
pub(crate) fn render(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Str(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// A slug: the shape of codes, roles and distributor names.
pub(crate) fn check_slug(s: &str) -> Result<(), DocError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DocError::BadSlug(s.to_owned()))
    }
}

/// Refuses free text that carries an e-mail address or a phone number.
pub(crate) fn check_free_text(field: &'static str, text: &str) -> Result<(), DocError> {
    if crate::docs::normalize::contains_email(text) || crate::docs::normalize::contains_phone(text)
    {
        Err(DocError::PersonalData { field })
    } else {
        Ok(())
    }
}

/// Creates an empty Text object under `key` and fills it.
pub(crate) fn put_text(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    text: &str,
) -> Result<ObjId, DocError> {
    let text_obj = doc.put_object(obj, key, ObjType::Text)?;
    if !text.is_empty() {
        doc.splice_text(&text_obj, 0, 0, text)?;
    }
    Ok(text_obj)
}
