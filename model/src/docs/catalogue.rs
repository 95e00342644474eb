//! The shared catalogue: teaching tools and documents, one record per item,
//! enriched by every centre that holds it.
//!
//! Records are spread over [`CATALOGUE_BUCKETS`] documents `catalogue/NNN` by
//! a hash of their id ([`bucket_of`]). Inside a bucket the layout is
//!
//! ```text
//! records: { <record id>: {
//!     title, doc_type, creator, publisher, conditions_of_use : str (last writer wins, conflicts kept)
//!     year, age_min, age_max                                  : uint
//!     description                                             : Text (merges character by character)
//!     themes, publics, languages, links, aliases              : map member -> true (add-wins sets)
//!     reviews   : { "<centre>/<role>/rating" : uint, "<centre>/<role>/text" : str }
//!     holdings  : { "<centre>/copies" : uint, "<centre>/shelf_mark" : str, "<centre>/availability" : str }
//!     downloads : { "<distributor>/<centre>/<instance hex>" : counter }
//!     merged_into, created_by, last_edited_by                 : str
//! } }
//! ```
//!
//! Every container of a record is created in the change that creates the
//! record, and per-centre entries are flat composite keys holding scalars, so
//! two writers never create two objects under the same key (see `schema`).
//! Download counters are keyed by the writing actor as well as the
//! distributor: Automerge counters only add up when they are the same object,
//! and a counter created concurrently at two places would lose one side's
//! increments, so each writer owns its own counter and readers sum them.
//!
//! No field holds a person: reviews are keyed by centre and [`ReviewerRole`],
//! holdings by centre, provenance names centres; `creator` is the authorship
//! statement printed on the published item (usually an organisation), and free
//! text refuses e-mail addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use automerge::iter::DocItem;
use automerge::transaction::Transactable;
use automerge::{
    AutoCommit, ObjId, ObjType, Patch, Prop, ROOT, ReadDoc, ScalarValue, Span, ValueRef,
};
use sha2::{Digest, Sha256};

use crate::actor::CentreActor;
use crate::centres::CentreId;
use crate::docs::ids::{CATALOGUE_BUCKETS, DocId};
use crate::docs::normalize::fold;
use crate::docs::schema::{
    self, DocError, check_free_text, check_slug, competing_values, get_obj, one_change, put_text,
    set_members,
};
use crate::vocab;

const RECORDS: &str = "records";

const TITLE: &str = "title";
const DOC_TYPE: &str = "doc_type";
const CREATOR: &str = "creator";
const PUBLISHER: &str = "publisher";
const YEAR: &str = "year";
const AGE_MIN: &str = "age_min";
const AGE_MAX: &str = "age_max";
const CONDITIONS: &str = "conditions_of_use";
const DESCRIPTION: &str = "description";
const THEMES: &str = "themes";
const PUBLICS: &str = "publics";
const LANGUAGES: &str = "languages";
const LINKS: &str = "links";
const REVIEWS: &str = "reviews";
const HOLDINGS: &str = "holdings";
const DOWNLOADS: &str = "downloads";
const MERGED_INTO: &str = "merged_into";
const ALIASES: &str = "aliases";
const CREATED_BY: &str = "created_by";
const LAST_EDITED_BY: &str = "last_edited_by";

/// Scalar fields a data steward may see in conflict.
const SCALAR_FIELDS: [&str; 9] = [
    TITLE,
    DOC_TYPE,
    CREATOR,
    PUBLISHER,
    YEAR,
    AGE_MIN,
    AGE_MAX,
    CONDITIONS,
    MERGED_INTO,
];

/// Record fields that are containers, created with the record and never
/// replaced afterwards. `validate` refuses any change that replaces one.
pub(crate) const RECORD_CONTAINERS: [&str; 9] = [
    DESCRIPTION,
    THEMES,
    PUBLICS,
    LANGUAGES,
    LINKS,
    REVIEWS,
    HOLDINGS,
    DOWNLOADS,
    ALIASES,
];

/// Schema key names `validate` needs, kept here so the strings stay in the
/// module that owns the schema.
pub(crate) mod keys {
    pub(crate) const RECORDS: &str = super::RECORDS;
    pub(crate) const HOLDINGS: &str = super::HOLDINGS;
    pub(crate) const REVIEWS: &str = super::REVIEWS;
    pub(crate) const DOWNLOADS: &str = super::DOWNLOADS;
    pub(crate) const CREATED_BY: &str = super::CREATED_BY;
    pub(crate) const LAST_EDITED_BY: &str = super::LAST_EDITED_BY;
}

pub(crate) fn genesis_content(doc: &mut AutoCommit) -> Result<(), DocError> {
    doc.put_object(ROOT, RECORDS, ObjType::Map)?;
    Ok(())
}

/// The id of a catalogue record: `r-<32 hex>` from caller entropy, or
/// `<centre>.<number>` for a centre's own local numbering. Ids never contain
/// `/` or `|`, so they are safe inside composite keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record id « {0} » must be 1 to 80 characters of a-z, 0-9, '-', '_' or '.'")]
pub struct RecordIdError(pub String);

impl RecordId {
    /// A fresh id from 16 random bytes the caller draws (this crate has no
    /// randomness of its own).
    pub fn from_entropy(bytes: [u8; 16]) -> RecordId {
        RecordId(format!("r-{}", hex::encode(bytes)))
    }

    /// An id derived from a centre's local catalogue number, so importing the
    /// same local record twice names the same shared record.
    pub fn from_local(centre: &CentreId, local_number: u64) -> RecordId {
        RecordId(format!("{centre}.{local_number}"))
    }

    pub fn parse(s: &str) -> Result<RecordId, RecordIdError> {
        let ok = !s.is_empty()
            && s.len() <= 80
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if ok {
            Ok(RecordId(s.to_owned()))
        } else {
            Err(RecordIdError(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RecordId {
    type Err = RecordIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordId::parse(s)
    }
}

/// The bucket a record lives in: the first two bytes of SHA-256 of its id,
/// modulo the bucket count. Stable across versions and platforms.
pub fn bucket_of(id: &RecordId) -> u16 {
    let hash = Sha256::digest(id.as_str().as_bytes());
    u16::from_be_bytes([hash[0], hash[1]]) % CATALOGUE_BUCKETS
}

/// The document a record lives in.
pub fn doc_id_of(id: &RecordId) -> DocId {
    DocId::catalogue(bucket_of(id))
}

/// The role under which a centre reviews a tool. A closed list on purpose:
/// a review is signed by a centre and a function, never by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReviewerRole {
    Documentaliste,
    ChargeDeProjet,
    Animateur,
    Formateur,
    Direction,
    Equipe,
}

impl ReviewerRole {
    pub const ALL: [ReviewerRole; 6] = [
        ReviewerRole::Documentaliste,
        ReviewerRole::ChargeDeProjet,
        ReviewerRole::Animateur,
        ReviewerRole::Formateur,
        ReviewerRole::Direction,
        ReviewerRole::Equipe,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ReviewerRole::Documentaliste => "documentaliste",
            ReviewerRole::ChargeDeProjet => "charge_projet",
            ReviewerRole::Animateur => "animateur",
            ReviewerRole::Formateur => "formateur",
            ReviewerRole::Direction => "direction",
            ReviewerRole::Equipe => "equipe",
        }
    }

    pub fn from_code(code: &str) -> Option<ReviewerRole> {
        ReviewerRole::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// Whose review: one per centre and role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReviewKey {
    pub centre: CentreId,
    pub role: ReviewerRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Review {
    /// 1 to 5.
    pub rating: u8,
    pub text: String,
}

/// Whether a centre's copies can be lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Availability {
    #[default]
    Available,
    OnLoan,
    ReferenceOnly,
    Withdrawn,
}

impl Availability {
    pub const ALL: [Availability; 4] = [
        Availability::Available,
        Availability::OnLoan,
        Availability::ReferenceOnly,
        Availability::Withdrawn,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::OnLoan => "on_loan",
            Availability::ReferenceOnly => "reference_only",
            Availability::Withdrawn => "withdrawn",
        }
    }

    pub fn from_code(code: &str) -> Option<Availability> {
        Availability::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// One centre's copies of an item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holding {
    pub copies: u32,
    pub shelf_mark: String,
    pub availability: Availability,
}

/// The descriptive fields of a record, as entered at creation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordFields {
    pub title: String,
    /// A code of the `document_types` list.
    pub doc_type: String,
    /// The authorship statement printed on the item (typically « CLPS de
    /// Charleroi-Thuin et CPAS de Charleroi »): public bibliographic data.
    pub creator: String,
    pub publisher: String,
    pub year: Option<u16>,
    /// Codes of the `themes` list.
    pub themes: BTreeSet<String>,
    /// Target publics, as slugs (`enfants`, `adolescents`, `enseignants`...).
    pub publics: BTreeSet<String>,
    pub age_min: Option<u8>,
    pub age_max: Option<u8>,
    pub description: String,
    pub conditions_of_use: String,
    /// ISO 639-1 codes.
    pub languages: BTreeSet<String>,
    /// `http`/`https` URLs.
    pub links: BTreeSet<String>,
}

/// A record as read back from a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub fields: RecordFields,
    pub reviews: BTreeMap<ReviewKey, Review>,
    pub holdings: BTreeMap<CentreId, Holding>,
    /// Downloads per distributor, summed over every writer.
    pub downloads: BTreeMap<String, i64>,
    /// Set when this record is an alias of another after a duplicate merge.
    pub merged_into: Option<RecordId>,
    pub aliases: BTreeSet<RecordId>,
    pub created_by: Option<CentreId>,
    pub last_edited_by: Option<CentreId>,
}

/// One edit of a record's descriptive fields; a list of them is one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEdit {
    Title(String),
    DocType(String),
    Creator(String),
    Publisher(String),
    Year(Option<u16>),
    AgeRange {
        min: Option<u8>,
        max: Option<u8>,
    },
    ConditionsOfUse(String),
    AddTheme(String),
    RemoveTheme(String),
    AddPublic(String),
    RemovePublic(String),
    AddLanguage(String),
    RemoveLanguage(String),
    AddLink(String),
    RemoveLink(String),
    /// Character positions (Unicode scalar values), as an editor reports them.
    SpliceDescription {
        pos: usize,
        delete: usize,
        insert: String,
    },
    /// Replaces the description through a character diff, for callers that
    /// only have the old and new text.
    ReplaceDescription(String),
}

/// A scalar field whose value differs between replicas that edited it
/// concurrently. Automerge shows `values[0]` everywhere; the others stay in
/// the document until someone writes the field again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub record: RecordId,
    /// `title`, `year`, ... or `holdings.<centre>/copies`, `reviews.<centre>/<role>/text`.
    pub field: String,
    pub values: Vec<String>,
}

/// One catalogue bucket, written by one centre instance.
#[derive(Debug)]
pub struct CatalogueDoc {
    doc: AutoCommit,
    doc_id: DocId,
    bucket: u16,
    actor: CentreActor,
    time: i64,
}

impl CatalogueDoc {
    /// A new, empty bucket.
    pub fn create(bucket: u16, actor: CentreActor) -> Result<CatalogueDoc, DocError> {
        let doc_id = DocId::catalogue(bucket);
        let doc = schema::create_doc(&doc_id, &actor)?;
        Ok(CatalogueDoc::wrap(doc, doc_id, actor))
    }

    /// A bucket from saved bytes (a full or incremental save).
    pub fn load(bucket: u16, bytes: &[u8], actor: CentreActor) -> Result<CatalogueDoc, DocError> {
        let doc_id = DocId::catalogue(bucket);
        let doc = schema::load_doc(&doc_id, bytes, &actor)?;
        Ok(CatalogueDoc::wrap(doc, doc_id, actor))
    }

    /// Wraps a document the caller already holds, after checking its root.
    pub fn from_automerge(
        bucket: u16,
        doc: AutoCommit,
        actor: CentreActor,
    ) -> Result<CatalogueDoc, DocError> {
        let doc_id = DocId::catalogue(bucket);
        schema::check_root(&doc, &doc_id)?;
        Ok(CatalogueDoc::wrap(
            doc.with_actor(actor.actor_id()),
            doc_id,
            actor,
        ))
    }

    fn wrap(doc: AutoCommit, doc_id: DocId, actor: CentreActor) -> CatalogueDoc {
        let bucket = match doc_id.kind() {
            crate::docs::DocKind::Catalogue { bucket } => *bucket,
            _ => 0,
        };
        CatalogueDoc {
            doc,
            doc_id,
            bucket,
            actor,
            time: 0,
        }
    }

    pub fn doc_id(&self) -> &DocId {
        &self.doc_id
    }

    pub fn bucket(&self) -> u16 {
        self.bucket
    }

    pub fn actor(&self) -> &CentreActor {
        &self.actor
    }

    /// Seconds since the epoch written into the next changes. This crate
    /// reads no clock: the caller passes the time, 0 by default.
    pub fn set_commit_time(&mut self, unix_seconds: i64) {
        self.time = unix_seconds;
    }

    /// The underlying document, for sync, save and diff.
    pub fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    pub fn automerge_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    fn centre(&self) -> &CentreId {
        &self.actor.centre
    }

    fn check_bucket(&self, id: &RecordId) -> Result<(), DocError> {
        let expected = bucket_of(id);
        if expected == self.bucket {
            Ok(())
        } else {
            Err(DocError::WrongBucket {
                record: id.to_string(),
                expected,
            })
        }
    }

    fn record_obj(&self, id: &RecordId) -> Result<ObjId, DocError> {
        let records = schema::root_obj(&self.doc, RECORDS)?;
        get_obj(&self.doc, &records, id.as_str())
            .ok_or_else(|| DocError::UnknownRecord(id.to_string()))
    }

    /// Runs one logical operation on a record as a single change, stamping
    /// `last_edited_by` with this centre.
    fn record_change(
        &mut self,
        id: &RecordId,
        what: &str,
        ops: impl FnOnce(&mut AutoCommit, &ObjId, &CentreActor) -> Result<(), DocError>,
    ) -> Result<(), DocError> {
        let record = self.record_obj(id)?;
        let actor = self.actor.clone();
        let message = format!("{what} {id}");
        one_change(&mut self.doc, self.time, message, |doc| {
            ops(doc, &record, &actor)?;
            doc.put(&record, LAST_EDITED_BY, actor.centre.as_str())?;
            Ok(())
        })
    }

    /// Creates a record with its provenance; fails if the id is taken.
    pub fn create_record(&mut self, id: &RecordId, fields: &RecordFields) -> Result<(), DocError> {
        self.check_bucket(id)?;
        check_fields(fields)?;
        let records = schema::root_obj(&self.doc, RECORDS)?;
        if get_obj(&self.doc, &records, id.as_str()).is_some() {
            return Err(DocError::RecordExists(id.to_string()));
        }
        let centre = self.centre().as_str().to_owned();
        one_change(&mut self.doc, self.time, format!("create {id}"), |doc| {
            let record = doc.put_object(&records, id.as_str(), ObjType::Map)?;
            doc.put(&record, TITLE, fields.title.as_str())?;
            doc.put(&record, DOC_TYPE, fields.doc_type.as_str())?;
            doc.put(&record, CREATOR, fields.creator.as_str())?;
            doc.put(&record, PUBLISHER, fields.publisher.as_str())?;
            put_opt(doc, &record, YEAR, fields.year.map(u64::from))?;
            put_opt(doc, &record, AGE_MIN, fields.age_min.map(u64::from))?;
            put_opt(doc, &record, AGE_MAX, fields.age_max.map(u64::from))?;
            doc.put(&record, CONDITIONS, fields.conditions_of_use.as_str())?;
            put_text(doc, &record, DESCRIPTION, &fields.description)?;
            for (key, members) in [
                (THEMES, &fields.themes),
                (PUBLICS, &fields.publics),
                (LANGUAGES, &fields.languages),
                (LINKS, &fields.links),
            ] {
                let set = doc.put_object(&record, key, ObjType::Map)?;
                for member in members {
                    doc.put(&set, member.as_str(), true)?;
                }
            }
            for key in [REVIEWS, HOLDINGS, DOWNLOADS, ALIASES] {
                doc.put_object(&record, key, ObjType::Map)?;
            }
            doc.put(&record, CREATED_BY, centre.as_str())?;
            doc.put(&record, LAST_EDITED_BY, centre.as_str())?;
            Ok(())
        })
    }

    /// Applies `edits` to a record as one change.
    pub fn edit_record(&mut self, id: &RecordId, edits: &[RecordEdit]) -> Result<(), DocError> {
        for edit in edits {
            check_edit(edit)?;
        }
        self.record_change(id, "edit", |doc, record, _| {
            for edit in edits {
                apply_edit(doc, record, edit)?;
            }
            Ok(())
        })
    }

    /// Sets this centre's holding of a record.
    pub fn set_holding(&mut self, id: &RecordId, holding: &Holding) -> Result<(), DocError> {
        check_free_text("shelf_mark", &holding.shelf_mark)?;
        self.record_change(id, "holding", |doc, record, actor| {
            let holdings = child(doc, record, HOLDINGS)?;
            let prefix = actor.centre.as_str();
            doc.put(
                &holdings,
                format!("{prefix}/copies"),
                u64::from(holding.copies),
            )?;
            doc.put(
                &holdings,
                format!("{prefix}/shelf_mark"),
                holding.shelf_mark.as_str(),
            )?;
            doc.put(
                &holdings,
                format!("{prefix}/availability"),
                holding.availability.code(),
            )?;
            Ok(())
        })
    }

    /// Removes this centre's holding of a record.
    pub fn remove_holding(&mut self, id: &RecordId) -> Result<(), DocError> {
        self.record_change(id, "unhold", |doc, record, actor| {
            let holdings = child(doc, record, HOLDINGS)?;
            delete_prefixed(doc, &holdings, &format!("{}/", actor.centre))
        })
    }

    /// Sets this centre's review of a record in `role`.
    pub fn set_review(
        &mut self,
        id: &RecordId,
        role: ReviewerRole,
        review: &Review,
    ) -> Result<(), DocError> {
        if !(1..=5).contains(&review.rating) {
            return Err(DocError::Invalid(format!(
                "rating {} is not between 1 and 5",
                review.rating
            )));
        }
        check_free_text("review", &review.text)?;
        self.record_change(id, "review", |doc, record, actor| {
            let reviews = child(doc, record, REVIEWS)?;
            let prefix = format!("{}/{}", actor.centre, role.code());
            doc.put(
                &reviews,
                format!("{prefix}/rating"),
                u64::from(review.rating),
            )?;
            doc.put(&reviews, format!("{prefix}/text"), review.text.as_str())?;
            Ok(())
        })
    }

    /// Removes this centre's review in `role`.
    pub fn remove_review(&mut self, id: &RecordId, role: ReviewerRole) -> Result<(), DocError> {
        self.record_change(id, "unreview", |doc, record, actor| {
            let reviews = child(doc, record, REVIEWS)?;
            delete_prefixed(doc, &reviews, &format!("{}/{}/", actor.centre, role.code()))
        })
    }

    /// Adds `count` downloads through `distributor` (a centre id or a partner
    /// slug such as `cpas-charleroi`), recorded by this centre.
    pub fn add_downloads(
        &mut self,
        id: &RecordId,
        distributor: &str,
        count: u32,
    ) -> Result<(), DocError> {
        check_slug(distributor)?;
        self.record_change(id, "downloads", |doc, record, actor| {
            let downloads = child(doc, record, DOWNLOADS)?;
            let key = download_key(distributor, actor);
            if get_obj_or_scalar_exists(doc, &downloads, &key) {
                doc.increment(&downloads, key.as_str(), i64::from(count))?;
            } else {
                doc.put(
                    &downloads,
                    key.as_str(),
                    ScalarValue::counter(i64::from(count)),
                )?;
            }
            Ok(())
        })
    }

    /// One record, or `None` if this bucket does not hold it.
    pub fn record(&self, id: &RecordId) -> Option<Record> {
        read_record(&self.doc, id)
    }

    /// Every record id of the bucket, sorted.
    pub fn record_ids(&self) -> Vec<RecordId> {
        record_ids(&self.doc)
    }

    /// Every record of the bucket, sorted by id.
    pub fn records(&self) -> Vec<Record> {
        read_records(&self.doc)
    }

    /// See [`conflicts`].
    pub fn conflicts(&self) -> Vec<FieldConflict> {
        conflicts(&self.doc)
    }
}

fn put_opt(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: Option<u64>,
) -> Result<(), DocError> {
    match value {
        Some(v) => doc.put(obj, key, v)?,
        None => {
            if doc.get(obj, key)?.is_some() {
                doc.delete(obj, key)?;
            }
        }
    }
    Ok(())
}

fn child(doc: &AutoCommit, record: &ObjId, key: &str) -> Result<ObjId, DocError> {
    get_obj(doc, record, key).ok_or_else(|| DocError::Invalid(format!("record has no « {key} »")))
}

fn get_obj_or_scalar_exists(doc: &AutoCommit, obj: &ObjId, key: &str) -> bool {
    matches!(doc.get(obj, key), Ok(Some(_)))
}

fn delete_prefixed(doc: &mut AutoCommit, obj: &ObjId, prefix: &str) -> Result<(), DocError> {
    let keys: Vec<String> = doc.keys(obj).filter(|k| k.starts_with(prefix)).collect();
    for key in keys {
        doc.delete(obj, key.as_str())?;
    }
    Ok(())
}

fn download_key(distributor: &str, actor: &CentreActor) -> String {
    format!(
        "{distributor}/{}/{}",
        actor.centre,
        hex::encode(actor.instance)
    )
}

/// Checks codes and free text before anything is written.
fn check_fields(fields: &RecordFields) -> Result<(), DocError> {
    check_doc_type(&fields.doc_type)?;
    for theme in &fields.themes {
        check_theme(theme)?;
    }
    for public in &fields.publics {
        check_slug(public)?;
    }
    for language in &fields.languages {
        check_slug(language)?;
    }
    for link in &fields.links {
        check_link(link)?;
    }
    check_free_text("title", &fields.title)?;
    check_free_text("creator", &fields.creator)?;
    check_free_text("publisher", &fields.publisher)?;
    check_free_text("description", &fields.description)?;
    check_free_text("conditions_of_use", &fields.conditions_of_use)?;
    Ok(())
}

fn check_edit(edit: &RecordEdit) -> Result<(), DocError> {
    match edit {
        RecordEdit::Title(s) => check_free_text("title", s),
        RecordEdit::DocType(s) => check_doc_type(s),
        RecordEdit::Creator(s) => check_free_text("creator", s),
        RecordEdit::Publisher(s) => check_free_text("publisher", s),
        RecordEdit::ConditionsOfUse(s) => check_free_text("conditions_of_use", s),
        RecordEdit::AddTheme(s) => check_theme(s),
        RecordEdit::AddPublic(s) | RecordEdit::AddLanguage(s) => check_slug(s),
        RecordEdit::AddLink(s) => check_link(s),
        RecordEdit::SpliceDescription { insert, .. } => check_free_text("description", insert),
        RecordEdit::ReplaceDescription(s) => check_free_text("description", s),
        RecordEdit::Year(_)
        | RecordEdit::AgeRange { .. }
        | RecordEdit::RemoveTheme(_)
        | RecordEdit::RemovePublic(_)
        | RecordEdit::RemoveLanguage(_)
        | RecordEdit::RemoveLink(_) => Ok(()),
    }
}

fn check_doc_type(code: &str) -> Result<(), DocError> {
    if vocab::get().document_types.contains(code) {
        Ok(())
    } else {
        Err(DocError::UnknownCode {
            list: "document_types",
            code: code.to_owned(),
        })
    }
}

fn check_theme(code: &str) -> Result<(), DocError> {
    if vocab::get().themes.contains(code) {
        Ok(())
    } else {
        Err(DocError::UnknownCode {
            list: "themes",
            code: code.to_owned(),
        })
    }
}

fn check_link(link: &str) -> Result<(), DocError> {
    let ok = (link.starts_with("https://") || link.starts_with("http://"))
        && !link.contains(char::is_whitespace)
        && link.len() <= 2000;
    if ok {
        Ok(())
    } else {
        Err(DocError::Invalid(format!(
            "« {link} » is not an http(s) link"
        )))
    }
}

fn apply_edit(doc: &mut AutoCommit, record: &ObjId, edit: &RecordEdit) -> Result<(), DocError> {
    match edit {
        RecordEdit::Title(s) => doc.put(record, TITLE, s.as_str())?,
        RecordEdit::DocType(s) => doc.put(record, DOC_TYPE, s.as_str())?,
        RecordEdit::Creator(s) => doc.put(record, CREATOR, s.as_str())?,
        RecordEdit::Publisher(s) => doc.put(record, PUBLISHER, s.as_str())?,
        RecordEdit::ConditionsOfUse(s) => doc.put(record, CONDITIONS, s.as_str())?,
        RecordEdit::Year(y) => put_opt(doc, record, YEAR, y.map(u64::from))?,
        RecordEdit::AgeRange { min, max } => {
            put_opt(doc, record, AGE_MIN, min.map(u64::from))?;
            put_opt(doc, record, AGE_MAX, max.map(u64::from))?;
        }
        RecordEdit::AddTheme(s) => set_add(doc, record, THEMES, s)?,
        RecordEdit::RemoveTheme(s) => set_remove(doc, record, THEMES, s)?,
        RecordEdit::AddPublic(s) => set_add(doc, record, PUBLICS, s)?,
        RecordEdit::RemovePublic(s) => set_remove(doc, record, PUBLICS, s)?,
        RecordEdit::AddLanguage(s) => set_add(doc, record, LANGUAGES, s)?,
        RecordEdit::RemoveLanguage(s) => set_remove(doc, record, LANGUAGES, s)?,
        RecordEdit::AddLink(s) => set_add(doc, record, LINKS, s)?,
        RecordEdit::RemoveLink(s) => set_remove(doc, record, LINKS, s)?,
        RecordEdit::SpliceDescription {
            pos,
            delete,
            insert,
        } => {
            let text = child(doc, record, DESCRIPTION)?;
            let len = doc.length(&text);
            if *pos > len || pos.saturating_add(*delete) > len {
                return Err(DocError::Invalid(format!(
                    "splice {pos}+{delete} is outside a description of {len} characters"
                )));
            }
            let delete = isize::try_from(*delete)
                .map_err(|_| DocError::Invalid("splice too long".to_owned()))?;
            doc.splice_text(&text, *pos, delete, insert)?;
        }
        RecordEdit::ReplaceDescription(s) => {
            let text = child(doc, record, DESCRIPTION)?;
            doc.update_text(&text, s)?;
        }
    }
    Ok(())
}

/// Adds a set member. A member already present is not written again, so a
/// no-op add never shows up as an edit.
fn set_add(doc: &mut AutoCommit, record: &ObjId, set: &str, member: &str) -> Result<(), DocError> {
    let set = child(doc, record, set)?;
    if doc.get(&set, member)?.is_none() {
        doc.put(&set, member, true)?;
    }
    Ok(())
}

/// Removes a set member. The delete only covers the additions this replica
/// has seen, so a concurrent addition elsewhere survives (add-wins).
fn set_remove(
    doc: &mut AutoCommit,
    record: &ObjId,
    set: &str,
    member: &str,
) -> Result<(), DocError> {
    let set = child(doc, record, set)?;
    if doc.get(&set, member)?.is_some() {
        doc.delete(&set, member)?;
    }
    Ok(())
}

/// Record ids of a bucket document, sorted.
pub fn record_ids<R: ReadDoc>(doc: &R) -> Vec<RecordId> {
    let Some(records) = get_obj(doc, &ROOT, RECORDS) else {
        return Vec::new();
    };
    doc.keys(&records)
        .filter_map(|k| RecordId::parse(&k).ok())
        .collect()
}

/// Every record of a bucket document, sorted by id.
///
/// One pass over the records (Automerge's document iterator visits every
/// object below `records`, parents first) instead of a lookup per field of
/// every record: at 800 records a bucket, four to five times faster, and a
/// node projects every record of every bucket it receives whole.
pub fn read_records<R: ReadDoc>(doc: &R) -> Vec<Record> {
    let Some(records) = get_obj(doc, &ROOT, RECORDS) else {
        return Vec::new();
    };
    let walked = Walked::new(doc, &records);
    walked
        .keys(&records)
        .into_iter()
        .filter_map(|key| {
            let id = RecordId::parse(&key).ok()?;
            let obj = walked.child(&records, &key)?;
            Some(read_record_obj(&walked, id, &obj))
        })
        .collect()
}

/// Reads one record from any bucket document (an `Automerge` at the hub, an
/// `AutoCommit` at a node, a fork at some heads...).
pub fn read_record<R: ReadDoc>(doc: &R, id: &RecordId) -> Option<Record> {
    let records = get_obj(doc, &ROOT, RECORDS)?;
    let obj = get_obj(doc, &records, id.as_str())?;
    Some(read_record_obj(&Lookup(doc), id.clone(), &obj))
}

/// What reading a record needs of a document: the winning value of a key,
/// the keys of a map, the string of a text.
trait Source {
    fn scalar(&self, obj: &ObjId, key: &str) -> Option<ScalarValue>;
    fn child(&self, obj: &ObjId, key: &str) -> Option<ObjId>;
    /// Keys of a map, sorted (empty for anything else).
    fn keys(&self, obj: &ObjId) -> Vec<String>;
    fn text(&self, obj: &ObjId) -> String;

    fn string(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.scalar(obj, key)? {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    fn uint(&self, obj: &ObjId, key: &str) -> Option<u64> {
        match self.scalar(obj, key)? {
            ScalarValue::Uint(n) => Some(n),
            ScalarValue::Int(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }
}

/// A document read key by key (one record, or a record at some heads).
struct Lookup<'a, R>(&'a R);

impl<R: ReadDoc> Source for Lookup<'_, R> {
    fn scalar(&self, obj: &ObjId, key: &str) -> Option<ScalarValue> {
        schema::get_scalar(self.0, obj, key)
    }

    fn child(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        get_obj(self.0, obj, key)
    }

    fn keys(&self, obj: &ObjId) -> Vec<String> {
        set_members(self.0, obj).into_iter().collect()
    }

    fn text(&self, obj: &ObjId) -> String {
        self.0.text(obj).unwrap_or_default()
    }
}

/// What a map entry holds, as the document's iterator reported it.
enum Entry {
    Scalar(ScalarValue),
    Object(ObjId),
}

/// Every object below a container, read in one pass: the winning entry of
/// each map key (what `get` returns) and the string of each text.
struct Walked {
    maps: std::collections::HashMap<ObjId, BTreeMap<String, Entry>>,
    texts: std::collections::HashMap<ObjId, String>,
}

impl Walked {
    fn new<R: ReadDoc>(doc: &R, top: &ObjId) -> Walked {
        let mut walked = Walked {
            maps: std::collections::HashMap::new(),
            texts: std::collections::HashMap::new(),
        };
        for item in doc.iter_at(top, None) {
            let obj = ObjId::clone(&item.obj);
            match item.item {
                DocItem::Map(entry) => {
                    let value = match entry.value {
                        ValueRef::Object(_) => Entry::Object(entry.id()),
                        ValueRef::Scalar(s) => Entry::Scalar(ScalarValue::from(s)),
                    };
                    walked
                        .maps
                        .entry(obj)
                        .or_default()
                        .insert(entry.key.into_owned(), value);
                }
                DocItem::Text(Span::Text { text, .. }) => {
                    walked.texts.entry(obj).or_default().push_str(&text);
                }
                // No list and no block in a catalogue record.
                DocItem::Text(Span::Block(_)) | DocItem::List(_) => {}
            }
        }
        walked
    }
}

impl Source for Walked {
    fn scalar(&self, obj: &ObjId, key: &str) -> Option<ScalarValue> {
        match self.maps.get(obj)?.get(key)? {
            Entry::Scalar(s) => Some(s.clone()),
            Entry::Object(_) => None,
        }
    }

    fn child(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        match self.maps.get(obj)?.get(key)? {
            Entry::Object(id) => Some(id.clone()),
            Entry::Scalar(_) => None,
        }
    }

    fn keys(&self, obj: &ObjId) -> Vec<String> {
        self.maps
            .get(obj)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn text(&self, obj: &ObjId) -> String {
        self.texts.get(obj).cloned().unwrap_or_default()
    }
}

fn read_set(doc: &impl Source, record: &ObjId, key: &str) -> BTreeSet<String> {
    doc.child(record, key)
        .map(|set| doc.keys(&set).into_iter().collect())
        .unwrap_or_default()
}

fn read_record_obj(doc: &impl Source, id: RecordId, record: &ObjId) -> Record {
    let small = |key: &str| doc.uint(record, key).and_then(|v| u8::try_from(v).ok());
    let fields = RecordFields {
        title: doc.string(record, TITLE).unwrap_or_default(),
        doc_type: doc.string(record, DOC_TYPE).unwrap_or_default(),
        creator: doc.string(record, CREATOR).unwrap_or_default(),
        publisher: doc.string(record, PUBLISHER).unwrap_or_default(),
        year: doc.uint(record, YEAR).and_then(|v| u16::try_from(v).ok()),
        themes: read_set(doc, record, THEMES),
        publics: read_set(doc, record, PUBLICS),
        age_min: small(AGE_MIN),
        age_max: small(AGE_MAX),
        description: doc
            .child(record, DESCRIPTION)
            .map(|text| doc.text(&text))
            .unwrap_or_default(),
        conditions_of_use: doc.string(record, CONDITIONS).unwrap_or_default(),
        languages: read_set(doc, record, LANGUAGES),
        links: read_set(doc, record, LINKS),
    };

    let mut reviews: BTreeMap<ReviewKey, Review> = BTreeMap::new();
    if let Some(obj) = doc.child(record, REVIEWS) {
        for key in doc.keys(&obj) {
            let mut parts = key.splitn(3, '/');
            let (Some(centre), Some(role), Some(field)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(centre), Some(role)) = (CentreId::new(centre), ReviewerRole::from_code(role))
            else {
                continue;
            };
            let review = reviews.entry(ReviewKey { centre, role }).or_default();
            match field {
                "rating" => {
                    review.rating = doc
                        .uint(&obj, &key)
                        .and_then(|v| u8::try_from(v).ok())
                        .unwrap_or(0)
                }
                "text" => review.text = doc.string(&obj, &key).unwrap_or_default(),
                _ => {}
            }
        }
    }

    let mut holdings: BTreeMap<CentreId, Holding> = BTreeMap::new();
    if let Some(obj) = doc.child(record, HOLDINGS) {
        for key in doc.keys(&obj) {
            let Some((centre, field)) = key.split_once('/') else {
                continue;
            };
            let Ok(centre) = CentreId::new(centre) else {
                continue;
            };
            let holding = holdings.entry(centre).or_default();
            match field {
                "copies" => {
                    holding.copies = doc
                        .uint(&obj, &key)
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(0)
                }
                "shelf_mark" => holding.shelf_mark = doc.string(&obj, &key).unwrap_or_default(),
                "availability" => {
                    holding.availability = doc
                        .string(&obj, &key)
                        .and_then(|c| Availability::from_code(&c))
                        .unwrap_or_default()
                }
                _ => {}
            }
        }
    }

    let mut downloads: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(obj) = doc.child(record, DOWNLOADS) {
        for key in doc.keys(&obj) {
            let Some((distributor, _writer)) = key.split_once('/') else {
                continue;
            };
            let count = match doc.scalar(&obj, &key) {
                Some(ScalarValue::Counter(c)) => i64::from(&c),
                Some(ScalarValue::Int(n)) => n,
                _ => 0,
            };
            *downloads.entry(distributor.to_owned()).or_default() += count;
        }
    }

    let centre = |key: &str| doc.string(record, key).and_then(|c| CentreId::new(&c).ok());
    Record {
        fields,
        reviews,
        holdings,
        downloads,
        merged_into: doc
            .string(record, MERGED_INTO)
            .and_then(|s| RecordId::parse(&s).ok()),
        aliases: read_set(doc, record, ALIASES)
            .into_iter()
            .filter_map(|s| RecordId::parse(&s).ok())
            .collect(),
        created_by: centre(CREATED_BY),
        last_edited_by: centre(LAST_EDITED_BY),
        id,
    }
}

/// Every scalar field of a bucket whose concurrent writes disagree, for
/// `clps-node catalogue conflicts`. Provenance is left out: two centres
/// editing the same record always disagree on `last_edited_by`, and that is
/// not something to resolve.
pub fn conflicts<R: ReadDoc>(doc: &R) -> Vec<FieldConflict> {
    record_ids(doc)
        .iter()
        .flat_map(|id| record_conflicts(doc, id))
        .collect()
}

/// The conflicting values of one record (its page shows them).
pub fn record_conflicts<R: ReadDoc>(doc: &R, id: &RecordId) -> Vec<FieldConflict> {
    let mut out = Vec::new();
    let Some(records) = get_obj(doc, &ROOT, RECORDS) else {
        return out;
    };
    let Some(record) = get_obj(doc, &records, id.as_str()) else {
        return out;
    };
    for field in SCALAR_FIELDS {
        let values = competing_values(doc, &record, field);
        if values.len() > 1 {
            out.push(FieldConflict {
                record: id.clone(),
                field: field.to_owned(),
                values,
            });
        }
    }
    for container in [HOLDINGS, REVIEWS] {
        let Some(obj) = get_obj(doc, &record, container) else {
            continue;
        };
        for key in doc.keys(&obj) {
            let values = competing_values(doc, &obj, &key);
            if values.len() > 1 {
                out.push(FieldConflict {
                    record: id.clone(),
                    field: format!("{container}.{key}"),
                    values,
                });
            }
        }
    }
    out
}

/// The records touched by a list of patches (from `diff` or a patch log), so
/// a projection can refresh only those.
pub fn changed_records(patches: &[Patch]) -> BTreeSet<RecordId> {
    let mut out = BTreeSet::new();
    for patch in patches {
        let mut props = patch.path.iter().map(|(_, prop)| prop);
        let top = props.next();
        let record = props.next();
        let record = match (top, record, &patch.action) {
            (Some(Prop::Map(top)), Some(Prop::Map(id)), _) if top == RECORDS => Some(id.clone()),
            // A patch on the `records` map itself names the record in its action.
            (Some(Prop::Map(top)), None, automerge::PatchAction::PutMap { key, .. })
            | (Some(Prop::Map(top)), None, automerge::PatchAction::DeleteMap { key })
                if top == RECORDS =>
            {
                Some(key.clone())
            }
            _ => None,
        };
        if let Some(id) = record.and_then(|r| RecordId::parse(&r).ok()) {
            out.insert(id);
        }
    }
    out
}

/// The records the operations of `changes` touch, once `doc` holds them:
/// what a projection must refresh after receiving or making `changes`.
/// Unlike [`changed_records`] over a diff, whose cost grows with the whole
/// bucket (75 ms for one edit in a bucket of 800 records), this costs a
/// lookup per object the changes write to. `None` when an operation is
/// outside every record (the genesis) or cannot be placed: then diff.
pub fn records_touched(
    doc: &AutoCommit,
    changes: &[automerge::Change],
) -> Option<BTreeSet<RecordId>> {
    use automerge::legacy::{Key, ObjectId};
    let mut paths: std::collections::HashMap<ObjectId, Vec<String>> =
        std::collections::HashMap::new();
    let mut out = BTreeSet::new();
    for change in changes {
        // Changes already applied decode; a panic would only come from
        // bytes nobody validated, and the diff then decides.
        let expanded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
        for op in &expanded.operations {
            let ObjectId::Id(opid) = &op.obj else {
                return None;
            };
            if !paths.contains_key(&op.obj) {
                let obj = doc
                    .import_obj(&format!("{}@{}", opid.counter(), opid.actor()))
                    .ok()?;
                let path = doc
                    .parents(&obj)
                    .ok()?
                    .path()
                    .into_iter()
                    .map(|(_, prop)| match prop {
                        Prop::Map(k) => k,
                        Prop::Seq(i) => i.to_string(),
                    })
                    .collect();
                paths.insert(op.obj.clone(), path);
            }
            let path = paths.get(&op.obj)?;
            let record = match (path.as_slice(), &op.key) {
                ([top], Key::Map(id)) if top == RECORDS => id.as_str(),
                ([top, id, ..], _) if top == RECORDS => id.as_str(),
                _ => return None,
            };
            out.insert(RecordId::parse(record).ok()?);
        }
    }
    Some(out)
}

/// The duplicate-detection key of a record: folded title, folded publisher
/// (the creator when no publisher is recorded) and year.
pub fn duplicate_key(fields: &RecordFields) -> (String, String, Option<u16>) {
    duplicate_key_of(
        &fields.title,
        &fields.creator,
        &fields.publisher,
        fields.year,
    )
}

/// [`duplicate_key`] from the four fields it reads (a projection's columns).
pub fn duplicate_key_of(
    title: &str,
    creator: &str,
    publisher: &str,
    year: Option<u16>,
) -> (String, String, Option<u16>) {
    let publisher = if publisher.trim().is_empty() {
        creator
    } else {
        publisher
    };
    (fold(title), fold(publisher), year)
}

/// Pairs of records that look like the same item, smaller id first, sorted.
/// Records already merged into another are left out, and so are records with
/// an empty title (nothing to compare).
pub fn duplicate_candidates(records: &[Record]) -> Vec<(RecordId, RecordId)> {
    let mut groups: BTreeMap<(String, String, Option<u16>), Vec<&RecordId>> = BTreeMap::new();
    for record in records {
        if record.merged_into.is_some() {
            continue;
        }
        let key = duplicate_key(&record.fields);
        if key.0.is_empty() {
            continue;
        }
        groups.entry(key).or_default().push(&record.id);
    }
    let mut out = Vec::new();
    for ids in groups.values_mut() {
        ids.sort();
        ids.dedup();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                out.push(((*a).clone(), (*b).clone()));
            }
        }
    }
    out.sort();
    out
}

/// Which record of a duplicate pair survives. The lexicographically smaller
/// id wins whatever the argument order, so two centres merging the same pair
/// concurrently make the same choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub survivor: RecordId,
    pub alias: RecordId,
}

impl MergePlan {
    pub fn new(a: &RecordId, b: &RecordId) -> Result<MergePlan, DocError> {
        if a == b {
            return Err(DocError::Invalid(format!("cannot merge {a} with itself")));
        }
        let (survivor, alias) = if a < b { (a, b) } else { (b, a) };
        Ok(MergePlan {
            survivor: survivor.clone(),
            alias: alias.clone(),
        })
    }

    /// True when both records are in the same bucket, so the merge is one
    /// change in one document.
    pub fn same_bucket(&self) -> bool {
        bucket_of(&self.survivor) == bucket_of(&self.alias)
    }
}

/// Merges a duplicate pair: the alias gets `merged_into`, the survivor lists
/// the alias and takes the union of its sets (themes, publics, languages,
/// links). Scalar fields and other centres' holdings are not copied: the
/// former would turn into conflicts when two centres merge concurrently, and
/// only a centre may write its holdings. Readers follow `merged_into`.
///
/// `alias_doc` is the alias's bucket when it differs from the survivor's;
/// pass `None` when [`MergePlan::same_bucket`] holds. Each document gets one
/// change. Merging again is a no-op.
pub fn merge_records(
    plan: &MergePlan,
    survivor_doc: &mut CatalogueDoc,
    alias_doc: Option<&mut CatalogueDoc>,
) -> Result<(), DocError> {
    survivor_doc.check_bucket(&plan.survivor)?;
    let alias = match &alias_doc {
        Some(doc) => {
            doc.check_bucket(&plan.alias)?;
            doc.record(&plan.alias)
        }
        None => {
            survivor_doc.check_bucket(&plan.alias)?;
            survivor_doc.record(&plan.alias)
        }
    }
    .ok_or_else(|| DocError::UnknownRecord(plan.alias.to_string()))?;
    let survivor = survivor_doc
        .record(&plan.survivor)
        .ok_or_else(|| DocError::UnknownRecord(plan.survivor.to_string()))?;

    let survivor_needs = !survivor.aliases.contains(&plan.alias)
        || !alias.fields.themes.is_subset(&survivor.fields.themes)
        || !alias.fields.publics.is_subset(&survivor.fields.publics)
        || !alias.fields.languages.is_subset(&survivor.fields.languages)
        || !alias.fields.links.is_subset(&survivor.fields.links);
    let alias_needs = alias.merged_into.as_ref() != Some(&plan.survivor);

    let survivor_ops = |doc: &mut AutoCommit, record: &ObjId| -> Result<(), DocError> {
        set_add(doc, record, ALIASES, plan.alias.as_str())?;
        for (set, members) in [
            (THEMES, &alias.fields.themes),
            (PUBLICS, &alias.fields.publics),
            (LANGUAGES, &alias.fields.languages),
            (LINKS, &alias.fields.links),
        ] {
            for member in members {
                set_add(doc, record, set, member)?;
            }
        }
        Ok(())
    };
    let alias_ops = |doc: &mut AutoCommit, record: &ObjId| -> Result<(), DocError> {
        doc.put(record, MERGED_INTO, plan.survivor.as_str())?;
        Ok(())
    };

    match alias_doc {
        Some(alias_doc) => {
            if survivor_needs {
                survivor_doc.record_change(&plan.survivor, "merge", |doc, record, _| {
                    survivor_ops(doc, record)
                })?;
            }
            if alias_needs {
                alias_doc.record_change(&plan.alias, "merge", |doc, record, _| {
                    alias_ops(doc, record)
                })?;
            }
        }
        None => {
            if survivor_needs || alias_needs {
                let alias_obj = survivor_doc.record_obj(&plan.alias)?;
                let centre = survivor_doc.centre().as_str().to_owned();
                survivor_doc.record_change(&plan.survivor, "merge", |doc, record, _| {
                    survivor_ops(doc, record)?;
                    alias_ops(doc, &alias_obj)?;
                    doc.put(&alias_obj, LAST_EDITED_BY, centre.as_str())?;
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

/// Follows `merged_into` links from `id` within the given records to the
/// surviving record (stops on a cycle or a record not given).
pub fn canonical_id(records: &BTreeMap<RecordId, Record>, id: &RecordId) -> RecordId {
    let mut current = id.clone();
    let mut seen = BTreeSet::new();
    while let Some(next) = records.get(&current).and_then(|r| r.merged_into.clone()) {
        if !seen.insert(current.clone()) {
            break;
        }
        current = next;
    }
    current
}

/// The catalogue's schema as the validation gate checks it, operation by
/// operation (types, keys, owners, lengths) and, once a change is applied,
/// record by record (every text readable, within its length, without an
/// e-mail address or a phone number). The hub runs it on every incoming
/// change and the node before it commits its own (`validate`); the typed
/// operations above never write anything it refuses.
pub mod rules {
    use automerge::ObjType;
    use automerge::ScalarValue;
    use automerge::legacy::OpType;

    use super::*;

    pub const MAX_TITLE_CHARS: usize = 500;
    pub const MAX_NAME_CHARS: usize = 500;
    pub const MAX_CONDITIONS_CHARS: usize = 1_000;
    pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
    pub const MAX_SHELF_MARK_CHARS: usize = 100;
    pub const MAX_REVIEW_CHARS: usize = 2_000;
    pub const MAX_SET_MEMBERS: usize = 64;
    pub const MAX_COPIES: u64 = 10_000;

    fn str_value(action: &OpType) -> Option<&str> {
        match action {
            OpType::Put(ScalarValue::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    fn uint_value(action: &OpType) -> Option<u64> {
        match action {
            OpType::Put(ScalarValue::Uint(n)) => Some(*n),
            OpType::Put(ScalarValue::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn bounded_str(action: &OpType, max: usize) -> Result<(), String> {
        match str_value(action) {
            Some(s) if s.chars().count() <= max => Ok(()),
            Some(_) => Err(format!("more than {max} characters")),
            None => Err("not a plain string".to_owned()),
        }
    }

    fn bounded_uint(action: &OpType, min: u64, max: u64) -> Result<(), String> {
        match uint_value(action) {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            Some(n) => Err(format!("{n} is not between {min} and {max}")),
            None => Err("not an unsigned integer".to_owned()),
        }
    }

    /// A record id a change may create in `bucket`: the id grammar, the
    /// right bucket, and a `<centre>.<n>` id only by that centre.
    pub fn check_new_record_id(id: &str, bucket: u16, author: &CentreId) -> Result<(), String> {
        let parsed = RecordId::parse(id).map_err(|e| e.to_string())?;
        if bucket_of(&parsed) != bucket {
            return Err(format!(
                "record {id} belongs in bucket {}",
                bucket_of(&parsed)
            ));
        }
        if let Some((centre, number)) = id.rsplit_once('.')
            && (centre != author.as_str()
                || number.is_empty()
                || !number.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "an id of the form <centre>.<number> is created only by that centre, not {author}"
            ));
        }
        Ok(())
    }

    /// A write of `field` directly in a record (`created_here`: the record
    /// is created by the same change). Provenance is checked by the caller.
    pub fn check_field(field: &str, action: &OpType, created_here: bool) -> Result<(), String> {
        let container = |kind: ObjType| match action {
            OpType::Make(k) if *k == kind && created_here => Ok(()),
            OpType::Make(k) if *k == kind => Err("created only with its record".to_owned()),
            _ => Err(format!("must be a {kind:?} created with its record")),
        };
        if matches!(action, OpType::Delete) {
            // Optional numbers are removed this way, and writing the value a
            // conflicted key already shows is encoded as a delete of the
            // other values; a record that loses a field it needs fails the
            // read-back check. Containers are never removed.
            return if RECORD_CONTAINERS.contains(&field) {
                Err("cannot be removed".to_owned())
            } else {
                Ok(())
            };
        }
        match field {
            TITLE => bounded_str(action, MAX_TITLE_CHARS),
            CREATOR | PUBLISHER => bounded_str(action, MAX_NAME_CHARS),
            CONDITIONS => bounded_str(action, MAX_CONDITIONS_CHARS),
            DOC_TYPE => match str_value(action) {
                Some(code) if vocab::get().document_types.contains(code) => Ok(()),
                Some(code) => Err(format!("« {code} » is not a document type")),
                None => Err("not a plain string".to_owned()),
            },
            YEAR => bounded_uint(action, 0, 9_999),
            AGE_MIN | AGE_MAX => bounded_uint(action, 0, 120),
            MERGED_INTO => match str_value(action) {
                Some(id) if RecordId::parse(id).is_ok() => Ok(()),
                _ => Err("not a record id".to_owned()),
            },
            DESCRIPTION => container(ObjType::Text),
            THEMES | PUBLICS | LANGUAGES | LINKS | REVIEWS | HOLDINGS | DOWNLOADS | ALIASES => {
                container(ObjType::Map)
            }
            CREATED_BY | LAST_EDITED_BY => Ok(()),
            _ => Err("not a field of a catalogue record".to_owned()),
        }
    }

    /// A write inside one of a record's containers, by `author`.
    pub fn check_entry(
        container: &str,
        key: Option<&str>,
        action: &OpType,
        author: &CentreActor,
    ) -> Result<(), String> {
        if let OpType::Make(_) = action {
            return Err("no object may be nested here".to_owned());
        }
        let Some(key) = key else {
            // Only a description is a sequence: characters go in and out.
            return match (container, action) {
                (DESCRIPTION, OpType::Put(ScalarValue::Str(_)) | OpType::Delete) => Ok(()),
                _ => Err("not a text".to_owned()),
            };
        };
        let set_member = |ok: bool| match action {
            _ if !ok => Err(format!("« {key} » is not a valid member")),
            OpType::Put(ScalarValue::Boolean(true)) | OpType::Delete => Ok(()),
            _ => Err("a set member is written as true".to_owned()),
        };
        let centre = author.centre.as_str();
        match container {
            THEMES => set_member(vocab::get().themes.contains(key)),
            PUBLICS | LANGUAGES => set_member(check_slug(key).is_ok()),
            LINKS => set_member(check_link(key).is_ok()),
            ALIASES => set_member(RecordId::parse(key).is_ok()),
            HOLDINGS => {
                let Some(field) = key
                    .strip_prefix(centre)
                    .and_then(|rest| rest.strip_prefix('/'))
                else {
                    return Err(format!(
                        "a holding is written under its centre, not by {centre}"
                    ));
                };
                if matches!(action, OpType::Delete) {
                    return Ok(());
                }
                match field {
                    "copies" => bounded_uint(action, 0, MAX_COPIES),
                    "shelf_mark" => bounded_str(action, MAX_SHELF_MARK_CHARS),
                    "availability" => match str_value(action) {
                        Some(code) if Availability::from_code(code).is_some() => Ok(()),
                        _ => Err("not an availability code".to_owned()),
                    },
                    _ => Err(format!("« {field} » is not a holding field")),
                }
            }
            REVIEWS => {
                let mut parts = key.split('/');
                let (owner, role, field) = (parts.next(), parts.next(), parts.next());
                if owner != Some(centre) || parts.next().is_some() {
                    return Err(format!(
                        "a review is written under its centre, not by {centre}"
                    ));
                }
                if role.is_none_or(|r| ReviewerRole::from_code(r).is_none()) {
                    return Err("not a reviewer role".to_owned());
                }
                if matches!(action, OpType::Delete) {
                    return Ok(());
                }
                match field {
                    Some("rating") => bounded_uint(action, 1, 5),
                    Some("text") => bounded_str(action, MAX_REVIEW_CHARS),
                    _ => Err("not a review field".to_owned()),
                }
            }
            DOWNLOADS => {
                let mut parts = key.split('/');
                let distributor = parts.next().unwrap_or("");
                let owner = parts.next().unwrap_or("");
                let instance = parts.next().unwrap_or("");
                if owner != centre
                    || instance != hex::encode(author.instance)
                    || parts.next().is_some()
                {
                    return Err(format!(
                        "downloads are counted under their own writer, not {key}"
                    ));
                }
                check_slug(distributor).map_err(|e| e.to_string())?;
                match action {
                    OpType::Put(ScalarValue::Counter(_)) | OpType::Increment(_) => Ok(()),
                    _ => Err("a download count is a counter".to_owned()),
                }
            }
            _ => Err("not a container of a catalogue record".to_owned()),
        }
    }

    /// A record as a change left it: readable, within its bounds, and free
    /// of e-mail addresses and phone numbers in every text.
    pub fn check_record(record: &Record) -> Result<(), String> {
        let f = &record.fields;
        if f.title.trim().is_empty() || f.doc_type.is_empty() {
            return Err("a record needs a title and a document type".to_owned());
        }
        if f.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "description longer than {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        for (name, set) in [
            ("themes", &f.themes),
            ("publics", &f.publics),
            ("languages", &f.languages),
            ("links", &f.links),
        ] {
            if set.len() > MAX_SET_MEMBERS {
                return Err(format!("more than {MAX_SET_MEMBERS} {name}"));
            }
        }
        let mut texts: Vec<(&'static str, &str)> = vec![
            ("title", &f.title),
            ("creator", &f.creator),
            ("publisher", &f.publisher),
            ("description", &f.description),
            ("conditions_of_use", &f.conditions_of_use),
        ];
        for holding in record.holdings.values() {
            texts.push(("shelf_mark", &holding.shelf_mark));
        }
        for review in record.reviews.values() {
            texts.push(("review", &review.text));
        }
        for (field, text) in texts {
            check_free_text(field, text).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
