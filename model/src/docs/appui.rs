//! A point d'appui repository (`appui/<scheme>`): the member centres, the
//! directory of specialised services, tool selections, events and co-written
//! documents of one scheme (assuétudes, evras, covid...).
//!
//! ```text
//! scheme : str
//! members   : { <centre>: true }
//! services  : { "<org>|name" | "<org>|org_type" | "<org>|sector" | "<org>|offer"
//!               | "<org>|email" | "<org>|phone"              : str
//!               "<org>|commune|<name>" | "<org>|theme|<code>" : true
//!               "<org>|note|<centre>"                         : str  (only that centre writes it)
//!               "<org>|listed_by|<centre>"                    : true (only that centre writes it) }
//! selections: { "<theme>|<public>|tool|<record>"              : true
//!               "<theme>|<public>|why|<record>|<centre>"      : str  (only that centre writes it) }
//! events    : { <event id>: { title, date, place, video, centres_present{}, agenda: Text, minutes: Text } }
//! documents : { <document id>: { title, body: Text, versions: { <name>: "hash,hash" } } }
//! ```
//!
//! `<org>` is [`org_key`] of the organisation's name. Two centres that list
//! « Infor-Drogues ASBL » and « infor drogues » offline write under the same
//! flat keys, so after sync there is one entry carrying both centres' notes;
//! differing spellings of a scalar show up as an ordinary field conflict.
//! Nested maps are avoided there on purpose: two maps created concurrently at
//! the same key would conflict and hide one centre's entry. Events and
//! documents are keyed by ids drawn from caller entropy, so they nest safely.
//!
//! Directory entries are organisation-level only: the contact fields hold an
//! organisation's generic desk, and free text refuses e-mail addresses.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjType, ROOT, ReadDoc};

use crate::actor::CentreActor;
use crate::centres::CentreId;
use crate::docs::catalogue::RecordId;
use crate::docs::ids::DocId;
use crate::docs::normalize::{contains_email, org_key};
use crate::docs::schema::{
    self, DocError, check_free_text, check_slug, competing_values, get_bool, get_obj, get_str,
    one_change, put_text, set_members,
};
use crate::vocab;

const SCHEME: &str = "scheme";
const MEMBERS: &str = "members";
const SERVICES: &str = "services";
const SELECTIONS: &str = "selections";
const EVENTS: &str = "events";
const DOCUMENTS: &str = "documents";

const SEP: char = '|';

pub(crate) fn genesis_content(doc: &mut AutoCommit, scheme: &str) -> Result<(), DocError> {
    doc.put(ROOT, SCHEME, scheme)?;
    for key in [MEMBERS, SERVICES, SELECTIONS, EVENTS, DOCUMENTS] {
        doc.put_object(ROOT, key, ObjType::Map)?;
    }
    Ok(())
}

/// Which centre alone may write a key of a container, if any; used by the
/// hub's validation.
pub(crate) fn key_owner(container: &str, key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split(SEP).collect();
    match container {
        SERVICES => match parts.get(1) {
            Some(&"note") | Some(&"listed_by") => Some(parts.get(2).copied().unwrap_or("")),
            _ => None,
        },
        SELECTIONS => match parts.get(2) {
            Some(&"why") => Some(parts.get(4).copied().unwrap_or("")),
            _ => None,
        },
        _ => None,
    }
    .map(str::to_owned)
}

/// What a centre enters about an organisation. Every field is optional but
/// the name: an update leaves unset fields as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInput {
    pub name: String,
    /// A slug such as `asbl`, `service_public`, `centre_planning`.
    pub org_type: Option<String>,
    /// A code of the `requester_sectors` list.
    pub sector: Option<String>,
    pub communes: BTreeSet<String>,
    /// Codes of the `themes` list.
    pub themes: BTreeSet<String>,
    pub offer_to_schools: Option<String>,
    /// The organisation's generic desk (`info@...`), never a person's address.
    pub email: Option<String>,
    /// The organisation's switchboard.
    pub phone: Option<String>,
    /// This centre's note about the organisation.
    pub note: Option<String>,
}

/// A services directory entry as read back, merged across centres.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEntry {
    pub key: String,
    pub name: String,
    pub org_type: String,
    pub sector: String,
    pub communes: BTreeSet<String>,
    pub themes: BTreeSet<String>,
    pub offer_to_schools: String,
    pub email: String,
    pub phone: String,
    pub notes: BTreeMap<CentreId, String>,
    pub listed_by: BTreeSet<CentreId>,
}

/// A tool selection: the tools chosen for a theme and a public.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectionKey {
    /// A code of the `themes` list.
    pub theme: String,
    /// A public slug (`adolescents`, `enseignants`...).
    pub public: String,
}

/// One selected tool with each centre's reason for choosing it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectedTool {
    pub record: Option<RecordId>,
    pub why: BTreeMap<CentreId, String>,
}

/// Where an event takes place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A venue (an organisation's premises, a town): never a home address.
    Venue(String),
    Video,
}

/// An inter-centre meeting or event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub place: Place,
    pub centres_present: BTreeSet<CentreId>,
    pub agenda: String,
    pub minutes: String,
}

/// A co-written document with its named versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoDocument {
    pub id: String,
    pub title: String,
    pub body: String,
    pub versions: BTreeMap<String, Vec<ChangeHash>>,
}

/// A scalar of the repository whose concurrent writes disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppuiConflict {
    pub container: &'static str,
    pub key: String,
    pub values: Vec<String>,
}

/// An id for an event or co-written document from caller entropy.
pub fn entry_id(prefix: &str, bytes: [u8; 8]) -> String {
    format!("{prefix}-{}", hex::encode(bytes))
}

/// One point d'appui repository, written by one centre instance.
#[derive(Debug)]
pub struct AppuiDoc {
    doc: AutoCommit,
    doc_id: DocId,
    actor: CentreActor,
    time: i64,
}

impl AppuiDoc {
    pub fn create(scheme: &str, actor: CentreActor) -> Result<AppuiDoc, DocError> {
        let doc_id = DocId::appui(scheme).map_err(|e| DocError::Invalid(e.to_string()))?;
        let doc = schema::create_doc(&doc_id, &actor)?;
        Ok(AppuiDoc {
            doc,
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn load(scheme: &str, bytes: &[u8], actor: CentreActor) -> Result<AppuiDoc, DocError> {
        let doc_id = DocId::appui(scheme).map_err(|e| DocError::Invalid(e.to_string()))?;
        let doc = schema::load_doc(&doc_id, bytes, &actor)?;
        Ok(AppuiDoc {
            doc,
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn from_automerge(
        scheme: &str,
        doc: AutoCommit,
        actor: CentreActor,
    ) -> Result<AppuiDoc, DocError> {
        let doc_id = DocId::appui(scheme).map_err(|e| DocError::Invalid(e.to_string()))?;
        schema::check_root(&doc, &doc_id)?;
        Ok(AppuiDoc {
            doc: doc.with_actor(actor.actor_id()),
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn doc_id(&self) -> &DocId {
        &self.doc_id
    }

    /// See `CatalogueDoc::set_commit_time`.
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

    pub fn scheme(&self) -> String {
        get_str(&self.doc, &ROOT, SCHEME).unwrap_or_default()
    }

    /// Lists this centre among the scheme's members.
    pub fn join(&mut self) -> Result<(), DocError> {
        let members = schema::root_obj(&self.doc, MEMBERS)?;
        let centre = self.actor.centre.to_string();
        one_change(&mut self.doc, self.time, "join".to_owned(), |doc| {
            doc.put(&members, centre.as_str(), true)?;
            Ok(())
        })
    }

    /// Lists another centre among the scheme's members (an invitation: the
    /// hub's space membership is what lets it write).
    pub fn invite(&mut self, centre: &CentreId) -> Result<(), DocError> {
        let members = schema::root_obj(&self.doc, MEMBERS)?;
        let centre = centre.to_string();
        one_change(
            &mut self.doc,
            self.time,
            format!("invite {centre}"),
            |doc| {
                doc.put(&members, centre.as_str(), true)?;
                Ok(())
            },
        )
    }

    pub fn members(&self) -> BTreeSet<CentreId> {
        members(&self.doc)
    }

    /// Adds or updates an organisation in the directory, as one change, and
    /// returns its key. This centre is recorded in `listed_by`.
    pub fn upsert_service(&mut self, input: &ServiceInput) -> Result<String, DocError> {
        let key = org_key(&input.name);
        if key.is_empty() {
            return Err(DocError::Invalid(format!(
                "« {} » is not an organisation name",
                input.name
            )));
        }
        check_service(input)?;
        let services = schema::root_obj(&self.doc, SERVICES)?;
        let centre = self.actor.centre.to_string();
        let k = |rest: &str| format!("{key}{SEP}{rest}");
        one_change(&mut self.doc, self.time, format!("service {key}"), |doc| {
            doc.put(&services, k("name"), input.name.as_str())?;
            for (field, value) in [
                ("org_type", &input.org_type),
                ("sector", &input.sector),
                ("offer", &input.offer_to_schools),
                ("email", &input.email),
                ("phone", &input.phone),
            ] {
                if let Some(value) = value {
                    doc.put(&services, k(field), value.as_str())?;
                }
            }
            for commune in &input.communes {
                doc.put(&services, k(&format!("commune{SEP}{commune}")), true)?;
            }
            for theme in &input.themes {
                doc.put(&services, k(&format!("theme{SEP}{theme}")), true)?;
            }
            if let Some(note) = &input.note {
                doc.put(&services, k(&format!("note{SEP}{centre}")), note.as_str())?;
            }
            doc.put(&services, k(&format!("listed_by{SEP}{centre}")), true)?;
            Ok(key.clone())
        })
    }

    /// Every directory entry, sorted by key.
    pub fn services(&self) -> Vec<ServiceEntry> {
        services(&self.doc)
    }

    /// Adds a tool to a selection, with this centre's reason when given.
    pub fn select_tool(
        &mut self,
        selection: &SelectionKey,
        record: &RecordId,
        why: Option<&str>,
    ) -> Result<(), DocError> {
        check_selection(selection)?;
        if let Some(why) = why {
            check_free_text("why", why)?;
        }
        let selections = schema::root_obj(&self.doc, SELECTIONS)?;
        let base = format!("{}{SEP}{}", selection.theme, selection.public);
        let centre = self.actor.centre.to_string();
        one_change(
            &mut self.doc,
            self.time,
            format!("select {record}"),
            |doc| {
                doc.put(&selections, format!("{base}{SEP}tool{SEP}{record}"), true)?;
                if let Some(why) = why {
                    doc.put(
                        &selections,
                        format!("{base}{SEP}why{SEP}{record}{SEP}{centre}"),
                        why,
                    )?;
                }
                Ok(())
            },
        )
    }

    /// Removes a tool from a selection (this centre's reason goes too; other
    /// centres' reasons stay in case the tool is selected again).
    pub fn unselect_tool(
        &mut self,
        selection: &SelectionKey,
        record: &RecordId,
    ) -> Result<(), DocError> {
        let selections = schema::root_obj(&self.doc, SELECTIONS)?;
        let base = format!("{}{SEP}{}", selection.theme, selection.public);
        let tool = format!("{base}{SEP}tool{SEP}{record}");
        let why = format!("{base}{SEP}why{SEP}{record}{SEP}{}", self.actor.centre);
        one_change(
            &mut self.doc,
            self.time,
            format!("unselect {record}"),
            |doc| {
                for key in [tool, why] {
                    if doc.get(&selections, key.as_str())?.is_some() {
                        doc.delete(&selections, key.as_str())?;
                    }
                }
                Ok(())
            },
        )
    }

    /// Selections with their tools, sorted.
    pub fn selections(&self) -> BTreeMap<SelectionKey, BTreeMap<RecordId, SelectedTool>> {
        selections(&self.doc)
    }

    /// Records an event; `id` comes from [`entry_id`].
    pub fn add_event(&mut self, event: &Event) -> Result<(), DocError> {
        check_date(&event.date)?;
        check_free_text("title", &event.title)?;
        check_free_text("agenda", &event.agenda)?;
        check_free_text("minutes", &event.minutes)?;
        check_slug(&event.id)?;
        let events = schema::root_obj(&self.doc, EVENTS)?;
        if get_obj(&self.doc, &events, &event.id).is_some() {
            return Err(DocError::Invalid(format!("event {} exists", event.id)));
        }
        one_change(
            &mut self.doc,
            self.time,
            format!("event {}", event.id),
            |doc| {
                let obj = doc.put_object(&events, event.id.as_str(), ObjType::Map)?;
                doc.put(&obj, "title", event.title.as_str())?;
                doc.put(&obj, "date", event.date.as_str())?;
                match &event.place {
                    Place::Venue(venue) => {
                        doc.put(&obj, "place", venue.as_str())?;
                        doc.put(&obj, "video", false)?;
                    }
                    Place::Video => doc.put(&obj, "video", true)?,
                }
                let present = doc.put_object(&obj, "centres_present", ObjType::Map)?;
                for centre in &event.centres_present {
                    doc.put(&present, centre.as_str(), true)?;
                }
                put_text(doc, &obj, "agenda", &event.agenda)?;
                put_text(doc, &obj, "minutes", &event.minutes)?;
                Ok(())
            },
        )
    }

    /// Edits an event's minutes at a character position.
    pub fn splice_minutes(
        &mut self,
        event_id: &str,
        pos: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), DocError> {
        check_free_text("minutes", insert)?;
        let events = schema::root_obj(&self.doc, EVENTS)?;
        let event = get_obj(&self.doc, &events, event_id)
            .ok_or_else(|| DocError::Invalid(format!("no event {event_id}")))?;
        let text = get_obj(&self.doc, &event, "minutes")
            .ok_or_else(|| DocError::Invalid("event has no minutes".to_owned()))?;
        splice(&mut self.doc, self.time, &text, pos, delete, insert)
    }

    pub fn events(&self) -> Vec<Event> {
        events(&self.doc)
    }

    /// Starts a co-written document; `id` comes from [`entry_id`].
    pub fn create_document(&mut self, id: &str, title: &str, body: &str) -> Result<(), DocError> {
        check_slug(id)?;
        check_free_text("title", title)?;
        check_free_text("body", body)?;
        let documents = schema::root_obj(&self.doc, DOCUMENTS)?;
        if get_obj(&self.doc, &documents, id).is_some() {
            return Err(DocError::Invalid(format!("document {id} exists")));
        }
        one_change(&mut self.doc, self.time, format!("document {id}"), |doc| {
            let obj = doc.put_object(&documents, id, ObjType::Map)?;
            doc.put(&obj, "title", title)?;
            put_text(doc, &obj, "body", body)?;
            doc.put_object(&obj, "versions", ObjType::Map)?;
            Ok(())
        })
    }

    /// Edits a co-written document at a character position.
    pub fn splice_document(
        &mut self,
        id: &str,
        pos: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), DocError> {
        check_free_text("body", insert)?;
        let (_, body, _) = self.document_objs(id)?;
        splice(&mut self.doc, self.time, &body, pos, delete, insert)
    }

    /// Replaces a document's body with `body`, written as the smallest
    /// character edits from the current body (Automerge's `update_text`), so
    /// that concurrent edits elsewhere in the text survive the merge.
    pub fn update_document(&mut self, id: &str, body: &str) -> Result<(), DocError> {
        check_free_text("body", body)?;
        let (_, text, _) = self.document_objs(id)?;
        one_change(&mut self.doc, self.time, format!("edit {id}"), |doc| {
            doc.update_text(&text, body)?;
            Ok(())
        })
    }

    /// Replaces an event's minutes with `minutes`, as character edits.
    pub fn update_minutes(&mut self, event_id: &str, minutes: &str) -> Result<(), DocError> {
        check_free_text("minutes", minutes)?;
        let events = schema::root_obj(&self.doc, EVENTS)?;
        let event = get_obj(&self.doc, &events, event_id)
            .ok_or_else(|| DocError::Invalid(format!("no event {event_id}")))?;
        let text = get_obj(&self.doc, &event, "minutes")
            .ok_or_else(|| DocError::Invalid("event has no minutes".to_owned()))?;
        one_change(
            &mut self.doc,
            self.time,
            format!("minutes {event_id}"),
            |doc| {
                doc.update_text(&text, minutes)?;
                Ok(())
            },
        )
    }

    /// Names the document's current state (`"v1 validée"`), so it can be read
    /// back exactly later, whatever is written after. Returns the heads.
    pub fn name_version(&mut self, id: &str, name: &str) -> Result<Vec<ChangeHash>, DocError> {
        check_free_text("version", name)?;
        let (_, _, versions) = self.document_objs(id)?;
        let heads = self.doc.get_heads();
        let value = heads
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",");
        one_change(&mut self.doc, self.time, format!("version {id}"), |doc| {
            doc.put(&versions, name, value)?;
            Ok(())
        })?;
        Ok(heads)
    }

    /// The body of a document as it was at a named version.
    pub fn version_text(&self, id: &str, name: &str) -> Result<Option<String>, DocError> {
        let (_, body, versions) = self.document_objs(id)?;
        let Some(value) = get_str(&self.doc, &versions, name) else {
            return Ok(None);
        };
        let heads = parse_heads(&value)?;
        Ok(Some(self.doc.text_at(&body, &heads)?))
    }

    pub fn documents(&self) -> Vec<CoDocument> {
        documents(&self.doc)
    }

    fn document_objs(
        &self,
        id: &str,
    ) -> Result<(automerge::ObjId, automerge::ObjId, automerge::ObjId), DocError> {
        let documents = schema::root_obj(&self.doc, DOCUMENTS)?;
        let obj = get_obj(&self.doc, &documents, id)
            .ok_or_else(|| DocError::Invalid(format!("no document {id}")))?;
        let body = get_obj(&self.doc, &obj, "body")
            .ok_or_else(|| DocError::Invalid("document has no body".to_owned()))?;
        let versions = get_obj(&self.doc, &obj, "versions")
            .ok_or_else(|| DocError::Invalid("document has no versions".to_owned()))?;
        Ok((obj, body, versions))
    }

    /// Scalars of the directory and selections in conflict.
    pub fn conflicts(&self) -> Vec<AppuiConflict> {
        conflicts(&self.doc)
    }
}

fn splice(
    doc: &mut AutoCommit,
    time: i64,
    text: &automerge::ObjId,
    pos: usize,
    delete: usize,
    insert: &str,
) -> Result<(), DocError> {
    let len = doc.length(text);
    if pos > len || pos.saturating_add(delete) > len {
        return Err(DocError::Invalid(format!(
            "splice {pos}+{delete} is outside a text of {len} characters"
        )));
    }
    let delete =
        isize::try_from(delete).map_err(|_| DocError::Invalid("splice too long".to_owned()))?;
    one_change(doc, time, "edit text".to_owned(), |doc| {
        doc.splice_text(text, pos, delete, insert)?;
        Ok(())
    })
}

fn parse_heads(value: &str) -> Result<Vec<ChangeHash>, DocError> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ChangeHash>()
                .map_err(|_| DocError::Invalid(format!("« {s} » is not a change hash")))
        })
        .collect()
}

fn check_service(input: &ServiceInput) -> Result<(), DocError> {
    check_free_text("name", &input.name)?;
    if let Some(t) = &input.org_type {
        check_slug(t)?;
    }
    if let Some(sector) = &input.sector
        && !vocab::get().requester_sectors.contains(sector)
    {
        return Err(DocError::UnknownCode {
            list: "requester_sectors",
            code: sector.clone(),
        });
    }
    for theme in &input.themes {
        if !vocab::get().themes.contains(theme) {
            return Err(DocError::UnknownCode {
                list: "themes",
                code: theme.clone(),
            });
        }
    }
    for commune in &input.communes {
        if commune.is_empty() || commune.contains(SEP) {
            return Err(DocError::Invalid(format!("« {commune} » is not a commune")));
        }
    }
    if let Some(offer) = &input.offer_to_schools {
        check_free_text("offer_to_schools", offer)?;
    }
    if let Some(note) = &input.note {
        check_free_text("note", note)?;
    }
    if let Some(email) = &input.email {
        check_org_email(email)?;
    }
    if let Some(phone) = &input.phone {
        let ok = !phone.is_empty()
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '/' | '.' | '-'));
        if !ok {
            return Err(DocError::Invalid(format!(
                "« {phone} » is not a phone number"
            )));
        }
    }
    Ok(())
}

/// An organisation's address: one address, and not shaped `first.last@`,
/// the usual form of a person's work address.
fn check_org_email(email: &str) -> Result<(), DocError> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err(DocError::Invalid(format!(
            "« {email} » is not an e-mail address"
        )));
    };
    if !contains_email(email) || domain.contains('@') || email.contains(char::is_whitespace) {
        return Err(DocError::Invalid(format!(
            "« {email} » is not an e-mail address"
        )));
    }
    let parts: Vec<&str> = local.split('.').collect();
    if parts.len() == 2
        && parts
            .iter()
            .all(|p| p.len() > 1 && p.chars().all(char::is_alphabetic))
    {
        return Err(DocError::PersonalData { field: "email" });
    }
    Ok(())
}

fn check_selection(selection: &SelectionKey) -> Result<(), DocError> {
    if !vocab::get().themes.contains(&selection.theme) {
        return Err(DocError::UnknownCode {
            list: "themes",
            code: selection.theme.clone(),
        });
    }
    check_slug(&selection.public)
}

fn check_date(date: &str) -> Result<(), DocError> {
    let b = date.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(DocError::Invalid(format!(
            "« {date} » is not a YYYY-MM-DD date"
        )))
    }
}

/// Member centres of a repository document.
pub fn members<R: ReadDoc>(doc: &R) -> BTreeSet<CentreId> {
    get_obj(doc, &ROOT, MEMBERS)
        .map(|m| {
            set_members(doc, &m)
                .into_iter()
                .filter_map(|c| CentreId::new(&c).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The services directory of a repository document, sorted by key.
pub fn services<R: ReadDoc>(doc: &R) -> Vec<ServiceEntry> {
    let Some(obj) = get_obj(doc, &ROOT, SERVICES) else {
        return Vec::new();
    };
    let mut entries: BTreeMap<String, ServiceEntry> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let mut parts = key.splitn(3, SEP);
        let (Some(org), Some(field)) = (parts.next(), parts.next()) else {
            continue;
        };
        let rest = parts.next().unwrap_or("");
        let entry = entries
            .entry(org.to_owned())
            .or_insert_with(|| ServiceEntry {
                key: org.to_owned(),
                ..ServiceEntry::default()
            });
        let value = || get_str(doc, &obj, &key).unwrap_or_default();
        match field {
            "name" => entry.name = value(),
            "org_type" => entry.org_type = value(),
            "sector" => entry.sector = value(),
            "offer" => entry.offer_to_schools = value(),
            "email" => entry.email = value(),
            "phone" => entry.phone = value(),
            "commune" => {
                entry.communes.insert(rest.to_owned());
            }
            "theme" => {
                entry.themes.insert(rest.to_owned());
            }
            "note" => {
                if let Ok(centre) = CentreId::new(rest) {
                    entry.notes.insert(centre, value());
                }
            }
            "listed_by" => {
                if let Ok(centre) = CentreId::new(rest) {
                    entry.listed_by.insert(centre);
                }
            }
            _ => {}
        }
    }
    entries.into_values().collect()
}

/// The tool selections of a repository document.
pub fn selections<R: ReadDoc>(doc: &R) -> BTreeMap<SelectionKey, BTreeMap<RecordId, SelectedTool>> {
    let mut out: BTreeMap<SelectionKey, BTreeMap<RecordId, SelectedTool>> = BTreeMap::new();
    let Some(obj) = get_obj(doc, &ROOT, SELECTIONS) else {
        return out;
    };
    for key in doc.keys(&obj) {
        let parts: Vec<&str> = key.split(SEP).collect();
        let (Some(theme), Some(public), Some(kind), Some(record)) =
            (parts.first(), parts.get(1), parts.get(2), parts.get(3))
        else {
            continue;
        };
        let Ok(record) = RecordId::parse(record) else {
            continue;
        };
        let selection = SelectionKey {
            theme: (*theme).to_owned(),
            public: (*public).to_owned(),
        };
        match *kind {
            "tool" => {
                let tool = out
                    .entry(selection)
                    .or_default()
                    .entry(record.clone())
                    .or_default();
                tool.record = Some(record);
            }
            "why" => {
                let Some(Ok(centre)) = parts.get(4).map(|c| CentreId::new(c)) else {
                    continue;
                };
                let why = get_str(doc, &obj, &key).unwrap_or_default();
                out.entry(selection)
                    .or_default()
                    .entry(record)
                    .or_default()
                    .why
                    .insert(centre, why);
            }
            _ => {}
        }
    }
    // A reason whose tool was unselected is kept in the document but not shown.
    for tools in out.values_mut() {
        tools.retain(|_, tool| tool.record.is_some());
    }
    out.retain(|_, tools| !tools.is_empty());
    out
}

/// Events of a repository document, sorted by date then id.
pub fn events<R: ReadDoc>(doc: &R) -> Vec<Event> {
    let Some(obj) = get_obj(doc, &ROOT, EVENTS) else {
        return Vec::new();
    };
    let mut out: Vec<Event> = doc
        .keys(&obj)
        .filter_map(|id| {
            let event = get_obj(doc, &obj, &id)?;
            let place = if get_bool(doc, &event, "video").unwrap_or(false) {
                Place::Video
            } else {
                Place::Venue(get_str(doc, &event, "place").unwrap_or_default())
            };
            Some(Event {
                title: get_str(doc, &event, "title").unwrap_or_default(),
                date: get_str(doc, &event, "date").unwrap_or_default(),
                place,
                centres_present: get_obj(doc, &event, "centres_present")
                    .map(|m| {
                        set_members(doc, &m)
                            .into_iter()
                            .filter_map(|c| CentreId::new(&c).ok())
                            .collect()
                    })
                    .unwrap_or_default(),
                agenda: schema::get_text(doc, &event, "agenda"),
                minutes: schema::get_text(doc, &event, "minutes"),
                id,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.date, &a.id).cmp(&(&b.date, &b.id)));
    out
}

/// Co-written documents of a repository document, sorted by id.
pub fn documents<R: ReadDoc>(doc: &R) -> Vec<CoDocument> {
    let Some(obj) = get_obj(doc, &ROOT, DOCUMENTS) else {
        return Vec::new();
    };
    doc.keys(&obj)
        .filter_map(|id| {
            let d = get_obj(doc, &obj, &id)?;
            let versions = get_obj(doc, &d, "versions")
                .map(|v| {
                    doc.keys(&v)
                        .filter_map(|name| {
                            let heads = parse_heads(&get_str(doc, &v, &name)?).ok()?;
                            Some((name, heads))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(CoDocument {
                title: get_str(doc, &d, "title").unwrap_or_default(),
                body: schema::get_text(doc, &d, "body"),
                versions,
                id,
            })
        })
        .collect()
}

/// Scalars of the services directory and selections in conflict.
pub fn conflicts<R: ReadDoc>(doc: &R) -> Vec<AppuiConflict> {
    let mut out = Vec::new();
    for container in [SERVICES, SELECTIONS] {
        let Some(obj) = get_obj(doc, &ROOT, container) else {
            continue;
        };
        for key in doc.keys(&obj) {
            let values = competing_values(doc, &obj, &key);
            if values.len() > 1 {
                out.push(AppuiConflict {
                    container,
                    key,
                    values,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn actor(centre: &str, n: u8) -> CentreActor {
        CentreActor::new(CentreId::new(centre).unwrap(), [n; 8])
    }

    #[test]
    fn whole_text_updates_from_two_centres_merge_character_by_character() {
        let mut namur = AppuiDoc::create("evras", actor("namur", 1)).unwrap();
        namur.join().unwrap();
        namur.invite(&CentreId::new("liege").unwrap()).unwrap();
        namur
            .create_document("ref", "Référence", "Début. Milieu. Fin.")
            .unwrap();
        namur.name_version("ref", "v1").unwrap();
        let mut liege = AppuiDoc::load("evras", &namur.save(), actor("liege", 2)).unwrap();
        namur
            .update_document("ref", "Le début. Milieu. Fin.")
            .unwrap();
        liege
            .update_document("ref", "Début. Milieu. La fin.")
            .unwrap();
        namur.automerge_mut().merge(liege.automerge_mut()).unwrap();
        let body = &namur.documents()[0].body;
        assert_eq!(body, "Le début. Milieu. La fin.");
        assert_eq!(
            namur.version_text("ref", "v1").unwrap().as_deref(),
            Some("Début. Milieu. Fin.")
        );
        assert_eq!(namur.members().len(), 2);
        // An e-mail address in the new text is refused, and nothing changes.
        let heads = namur.automerge_mut().get_heads();
        assert!(matches!(
            namur.update_document("ref", "écrire à jean@ecole.be"),
            Err(DocError::PersonalData { field: "body" })
        ));
        assert_eq!(namur.automerge_mut().get_heads(), heads);
    }
}
