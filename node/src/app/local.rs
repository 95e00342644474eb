//! The centre's own records as the interfaces use them: demandes,
//! organisations and persons, with the right of access and erasure of a
//! person's data. None of this ever enters a shared document; the activity
//! report and the publication preview (in [`super::report`]) only count it.
//!
//! Forms arrive as the text people typed; [`RequestForm::check`] and its
//! siblings return every field's problem at once, and a write happens in one
//! transaction or not at all.

use clps_model::vocab;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{ErrorKind, Node};
use crate::records::{self, Kind, List, Organisation, Person, Request};
use crate::store::StoreError;

/// Longest note or name accepted from a form.
pub const MAX_TEXT: usize = 4000;
pub const MAX_NAME: usize = 200;

/// A field of the demande, organisation and person forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Date,
    ServiceType,
    Sector,
    Profession,
    ContactMode,
    Themes,
    Organisation,
    Person,
    Note,
    Name,
    OrgType,
    Commune,
    FirstName,
    LastName,
    Email,
    Phone,
    From,
    To,
    Title,
    Scheme,
    Axes,
    Kind,
    EndDate,
    Organisers,
    Participants,
    Barcode,
    State,
    DueDate,
}

impl Field {
    /// The form's input name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Date => "date",
            Field::ServiceType => "service",
            Field::Sector => "secteur",
            Field::Profession => "profession",
            Field::ContactMode => "contact",
            Field::Themes => "themes",
            Field::Organisation => "organisation",
            Field::Person => "personne",
            Field::Note => "note",
            Field::Name => "nom",
            Field::OrgType => "type",
            Field::Commune => "commune",
            Field::FirstName => "prenom",
            Field::LastName => "nom_famille",
            Field::Email => "email",
            Field::Phone => "telephone",
            Field::From => "du",
            Field::To => "au",
            Field::Title => "titre",
            Field::Scheme => "dispositif",
            Field::Axes => "axes",
            Field::Kind => "genre",
            Field::EndDate => "fin",
            Field::Organisers => "organisateurs",
            Field::Participants => "participants",
            Field::Barcode => "code_barre",
            Field::State => "etat",
            Field::DueDate => "retour_prevu",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Required,
    UnknownCode(String),
    BadDate(String),
    TooLong {
        max: usize,
    },
    BadEmail(String),
    /// A new person needs a first and a last name.
    NeedsFullName(String),
    /// Several organisations or persons have this name.
    Ambiguous(String),
    /// The period ends before it starts.
    DateOrder,
    /// No organisation has this name.
    NoSuchOrganisation(String),
    /// Not a whole number of people.
    NotACount(String),
    /// A day that has not come yet.
    InFuture(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("no {kind} n° {id}", kind = .0.label(), id = .1)]
    NotFound(Kind, i64),
    #[error("the form has {} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LocalError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LocalError::NotFound(..) => ErrorKind::NotFound,
            LocalError::Invalid(_) => ErrorKind::Invalid,
            LocalError::Store(e) => e.kind(),
        }
    }
}

fn from_store(e: StoreError) -> LocalError {
    match e {
        StoreError::Record(records::RecordError::NotFound { kind, id }) => {
            let kind = [
                Kind::Organisation,
                Kind::Person,
                Kind::Request,
                Kind::Loan,
                Kind::Accompaniment,
                Kind::Event,
            ]
            .into_iter()
            .find(|k| k.label() == kind)
            .unwrap_or(Kind::Request);
            LocalError::NotFound(kind, id)
        }
        other => LocalError::Store(other),
    }
}

/// A date as staff type it (« 15/03/2021 », « 15-3-2021 ») or as a date
/// field sends it (« 2021-03-15 »), in ISO form; `None` if it is no date.
pub fn parse_date(text: &str) -> Option<String> {
    let text = text.trim();
    let iso = if text.len() == 10 && text.as_bytes()[4] == b'-' {
        text.to_owned()
    } else {
        let parts: Vec<&str> = text.split(['/', '-', '.']).collect();
        let [d, m, y] = parts.as_slice() else {
            return None;
        };
        let (d, m, y): (u32, u32, u32) = (d.parse().ok()?, m.parse().ok()?, y.parse().ok()?);
        if y < 1000 {
            return None;
        }
        format!("{y:04}-{m:02}-{d:02}")
    };
    records::check_date(&iso).ok().map(|()| iso)
}

fn required(field: Field, value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.push(FieldError {
            field,
            problem: Problem::Required,
        });
    }
    value.to_owned()
}

fn bounded(field: Field, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.chars().count() > max {
        errors.push(FieldError {
            field,
            problem: Problem::TooLong { max },
        });
    }
    value.to_owned()
}

fn code(field: Field, list: List, value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.push(FieldError {
            field,
            problem: Problem::Required,
        });
    } else if !list.codes().contains(value) {
        errors.push(FieldError {
            field,
            problem: Problem::UnknownCode(value.to_owned()),
        });
    }
    value.to_owned()
}

fn date(field: Field, value: &str, errors: &mut Vec<FieldError>) -> String {
    if value.trim().is_empty() {
        errors.push(FieldError {
            field,
            problem: Problem::Required,
        });
        return String::new();
    }
    match parse_date(value) {
        Some(iso) => iso,
        None => {
            errors.push(FieldError {
                field,
                problem: Problem::BadDate(value.trim().to_owned()),
            });
            String::new()
        }
    }
}

// ---- Demandes ---------------------------------------------------------------

/// The demande form, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestForm {
    pub date: String,
    pub service_type: String,
    pub sector: String,
    pub profession: String,
    pub contact_mode: String,
    pub themes: Vec<String>,
    /// The organisation's name as picked or typed (a new name creates it).
    pub organisation: String,
    /// « Prénom Nom » as picked or typed (a new name creates the person).
    pub person: String,
    pub note: String,
}

/// A checked demande form, before names are resolved.
struct CheckedRequest {
    request: Request,
    organisation: String,
    person: String,
}

impl RequestForm {
    fn check(&self) -> Result<CheckedRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let date = date(Field::Date, &self.date, &mut errors);
        let service_type = code(
            Field::ServiceType,
            List::ServiceType,
            &self.service_type,
            &mut errors,
        );
        let sector = code(Field::Sector, List::Sector, &self.sector, &mut errors);
        let profession = code(
            Field::Profession,
            List::Profession,
            &self.profession,
            &mut errors,
        );
        let contact_mode = code(
            Field::ContactMode,
            List::ContactMode,
            &self.contact_mode,
            &mut errors,
        );
        let mut themes: Vec<String> = Vec::new();
        for t in &self.themes {
            let t = t.trim();
            if t.is_empty() || themes.iter().any(|x| x == t) {
                continue;
            }
            if !List::Theme.codes().contains(t) {
                errors.push(FieldError {
                    field: Field::Themes,
                    problem: Problem::UnknownCode(t.to_owned()),
                });
            }
            themes.push(t.to_owned());
        }
        if themes.is_empty() {
            errors.push(FieldError {
                field: Field::Themes,
                problem: Problem::Required,
            });
        }
        let organisation = bounded(
            Field::Organisation,
            &self.organisation,
            MAX_NAME,
            &mut errors,
        );
        let person = bounded(Field::Person, &self.person, MAX_NAME, &mut errors);
        if !person.is_empty() && !person.contains(' ') && pick_id(&person).is_none() {
            errors.push(FieldError {
                field: Field::Person,
                problem: Problem::NeedsFullName(person.clone()),
            });
        }
        let note = bounded(Field::Note, &self.note, MAX_TEXT, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CheckedRequest {
            request: Request {
                id: 0,
                date,
                service_type,
                sector,
                profession,
                contact_mode,
                themes,
                organisation_id: None,
                person_id: None,
                note,
            },
            organisation,
            person,
        })
    }

    /// The form of a saved demande, names included.
    fn of(conn: &Connection, q: &Request) -> Result<RequestForm, StoreError> {
        Ok(RequestForm {
            date: q.date.clone(),
            service_type: q.service_type.clone(),
            sector: q.sector.clone(),
            profession: q.profession.clone(),
            contact_mode: q.contact_mode.clone(),
            themes: q.themes.clone(),
            organisation: match q.organisation_id {
                Some(id) => organisation_choice(conn, id)?,
                None => String::new(),
            },
            person: match q.person_id {
                Some(id) => person_choice(conn, id)?,
                None => String::new(),
            },
            note: q.note.clone(),
        })
    }
}

/// « Nom (n° 12) » names record 12: how a list tells homonyms apart.
fn pick_id(text: &str) -> Option<i64> {
    let inner = text.trim().strip_suffix(')')?;
    let (_, n) = inner.rsplit_once("(n° ")?;
    n.parse().ok()
}

fn without_pick(text: &str) -> &str {
    match text.rfind(" (n° ") {
        Some(i) if pick_id(text).is_some() => &text[..i],
        _ => text,
    }
}

/// How an organisation is offered in a pick list: its name, with its number
/// when another organisation has the same name.
fn organisation_choice(conn: &Connection, id: i64) -> Result<String, StoreError> {
    let (name, same): (String, i64) = conn.query_row(
        "SELECT name, (SELECT count(*) FROM organisations o2 WHERE lower(o2.name) = lower(o.name))
         FROM organisations o WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(if same > 1 {
        format!("{name} (n° {id})")
    } else {
        name
    })
}

fn person_choice(conn: &Connection, id: i64) -> Result<String, StoreError> {
    let (name, same): (String, i64) = conn.query_row(
        "SELECT first_name || ' ' || last_name,
                (SELECT count(*) FROM persons p2 WHERE lower(p2.first_name || ' ' || p2.last_name) = lower(p.first_name || ' ' || p.last_name))
         FROM persons p WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(if same > 1 {
        format!("{name} (n° {id})")
    } else {
        name
    })
}

/// What resolving a typed name did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    pub organisation: Option<String>,
    pub person: Option<String>,
}

/// The organisation a typed name designates, created if new.
pub(super) fn resolve_organisation(
    tx: &Transaction<'_>,
    text: &str,
    sector: &str,
    created: &mut Created,
) -> Result<Result<Option<i64>, FieldError>, StoreError> {
    if text.is_empty() {
        return Ok(Ok(None));
    }
    if let Some(id) = pick_id(text) {
        let found: Option<i64> = tx
            .query_row("SELECT id FROM organisations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        if found.is_some() {
            return Ok(Ok(found));
        }
    }
    let name = without_pick(text);
    let mut stmt =
        tx.prepare_cached("SELECT id FROM organisations WHERE lower(name) = lower(?1) LIMIT 2")?;
    let ids: Vec<i64> = stmt
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match ids.as_slice() {
        [id] => Ok(Ok(Some(*id))),
        [] => {
            let id = records::save_organisation(
                tx,
                &Organisation {
                    name: name.to_owned(),
                    sector: sector.to_owned(),
                    ..Organisation::default()
                },
            )?;
            created.organisation = Some(name.to_owned());
            Ok(Ok(Some(id)))
        }
        _ => Ok(Err(FieldError {
            field: Field::Organisation,
            problem: Problem::Ambiguous(name.to_owned()),
        })),
    }
}

pub(super) fn resolve_person(
    tx: &Transaction<'_>,
    text: &str,
    organisation_id: Option<i64>,
    created: &mut Created,
) -> Result<Result<Option<i64>, FieldError>, StoreError> {
    if text.is_empty() {
        return Ok(Ok(None));
    }
    if let Some(id) = pick_id(text) {
        let found: Option<i64> = tx
            .query_row("SELECT id FROM persons WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(Ok(found));
        }
    }
    let name = without_pick(text);
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM persons WHERE lower(first_name || ' ' || last_name) = lower(?1) LIMIT 2",
    )?;
    let ids: Vec<i64> = stmt
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match ids.as_slice() {
        [id] => Ok(Ok(Some(*id))),
        [] => {
            let Some((first, last)) = name.split_once(' ') else {
                return Ok(Err(FieldError {
                    field: Field::Person,
                    problem: Problem::NeedsFullName(name.to_owned()),
                }));
            };
            let id = records::save_person(
                tx,
                &Person {
                    first_name: first.trim().to_owned(),
                    last_name: last.trim().to_owned(),
                    organisation_id,
                    ..Person::default()
                },
            )?;
            created.person = Some(name.to_owned());
            Ok(Ok(Some(id)))
        }
        _ => Ok(Err(FieldError {
            field: Field::Person,
            problem: Problem::Ambiguous(name.to_owned()),
        })),
    }
}

/// A demande as the list shows it: names, not ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRow {
    pub id: i64,
    pub date: String,
    pub service_type: String,
    pub sector: String,
    pub profession: String,
    pub contact_mode: String,
    pub themes: Vec<String>,
    pub organisation: Option<String>,
    pub person: Option<String>,
    pub note: String,
}

/// The filters of the list of demandes (ISO dates, codes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub service_type: Option<String>,
    pub theme: Option<String>,
    pub sector: Option<String>,
    pub organisation_id: Option<i64>,
    pub person_id: Option<i64>,
    pub page: usize,
    pub per_page: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RequestList {
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub rows: Vec<RequestRow>,
}

const REQUEST_ROW: &str = "SELECT r.id, r.date, r.service_type, r.sector, r.profession, r.contact_mode,
        (SELECT group_concat(theme, ',') FROM (SELECT theme FROM request_themes t WHERE t.request_id = r.id ORDER BY theme)),
        o.name, p.first_name || ' ' || p.last_name, r.note
     FROM requests r
     LEFT JOIN organisations o ON o.id = r.organisation_id
     LEFT JOIN persons p ON p.id = r.person_id";

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    let themes: Option<String> = r.get(6)?;
    Ok(RequestRow {
        id: r.get(0)?,
        date: r.get(1)?,
        service_type: r.get(2)?,
        sector: r.get(3)?,
        profession: r.get(4)?,
        contact_mode: r.get(5)?,
        themes: themes
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        organisation: r.get(7)?,
        person: r.get(8)?,
        note: r.get(9)?,
    })
}

fn filter_sql(f: &RequestFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut push = |clause: &str, v: Value| {
        values.push(v);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(d) = &f.from {
        push("r.date >= ?", Value::Text(d.clone()));
    }
    if let Some(d) = &f.to {
        push("r.date <= ?", Value::Text(d.clone()));
    }
    if let Some(s) = &f.service_type {
        push("r.service_type = ?", Value::Text(s.clone()));
    }
    if let Some(s) = &f.sector {
        push("r.sector = ?", Value::Text(s.clone()));
    }
    if let Some(t) = &f.theme {
        push(
            "EXISTS (SELECT 1 FROM request_themes t WHERE t.request_id = r.id AND t.theme = ?)",
            Value::Text(t.clone()),
        );
    }
    if let Some(id) = f.organisation_id {
        push("r.organisation_id = ?", Value::Integer(id));
    }
    if let Some(id) = f.person_id {
        push("r.person_id = ?", Value::Integer(id));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

fn list_requests(conn: &Connection, f: &RequestFilter) -> Result<RequestList, StoreError> {
    let (filter, values) = filter_sql(f);
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM requests r{filter}"),
        rusqlite::params_from_iter(values.iter()),
        |r| r.get(0),
    )?;
    let per_page = f.per_page.clamp(1, 500);
    let total = usize::try_from(total).unwrap_or(0);
    let pages = total.div_ceil(per_page).max(1);
    let page = f.page.clamp(1, pages);
    let mut stmt = conn.prepare(&format!(
        "{REQUEST_ROW}{filter} ORDER BY r.date DESC, r.id DESC LIMIT {per_page} OFFSET {}",
        (page - 1) * per_page
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values.iter()), request_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(RequestList {
        total,
        page,
        pages,
        rows,
    })
}

/// Names offered when typing an organisation or a person.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub organisations: Vec<String>,
    /// (« Prénom Nom », its organisation)
    pub persons: Vec<(String, Option<String>)>,
}

fn check_filter(f: &RequestFilter) -> Result<(), LocalError> {
    let mut errors = Vec::new();
    for (field, d) in [(Field::From, &f.from), (Field::To, &f.to)] {
        if let Some(d) = d
            && records::check_date(d).is_err()
        {
            errors.push(FieldError {
                field,
                problem: Problem::BadDate(d.clone()),
            });
        }
    }
    if let (Some(a), Some(b)) = (&f.from, &f.to)
        && errors.is_empty()
        && b < a
    {
        errors.push(FieldError {
            field: Field::To,
            problem: Problem::DateOrder,
        });
    }
    for (field, list, v) in [
        (Field::ServiceType, List::ServiceType, &f.service_type),
        (Field::Sector, List::Sector, &f.sector),
        (Field::Themes, List::Theme, &f.theme),
    ] {
        if let Some(v) = v
            && !list.codes().contains(v)
        {
            errors.push(FieldError {
                field,
                problem: Problem::UnknownCode(v.clone()),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LocalError::Invalid(errors))
    }
}

impl Node {
    /// Records a new demande (`id` `None`) or changes one, creating the
    /// organisation and the person on the spot when their name is new.
    pub async fn save_request(
        &self,
        id: Option<i64>,
        form: &RequestForm,
        by: Option<&str>,
    ) -> Result<(i64, Created), LocalError> {
        let checked = form.check().map_err(LocalError::Invalid)?;
        let journal = self.journal_entry(
            by,
            if id.is_some() {
                "demande modifiée"
            } else {
                "demande ajoutée"
            },
            "",
        );
        let outcome = self
            .store()
            .call(move |c| {
                let tx = c.transaction()?;
                let mut q = checked.request;
                if let Some(id) = id {
                    records::load_request(&tx, id)?;
                    q.id = id;
                }
                let mut created = Created::default();
                let org =
                    resolve_organisation(&tx, &checked.organisation, &q.sector, &mut created)?;
                let org = match org {
                    Ok(o) => o,
                    Err(e) => return Ok(Err(vec![e])),
                };
                let person = match resolve_person(&tx, &checked.person, org, &mut created)? {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(vec![e])),
                };
                q.organisation_id = org;
                q.person_id = person;
                let id = records::save_request(&tx, &q)?;
                journal.with_target(format!("demande n° {id}")).write(&tx)?;
                tx.commit()?;
                Ok(Ok((id, created)))
            })
            .await
            .map_err(from_store)?;
        outcome.map_err(LocalError::Invalid)
    }

    /// One demande, as its form shows it.
    pub async fn request_form(&self, id: i64) -> Result<RequestForm, LocalError> {
        self.store()
            .call(move |c| {
                let q = records::load_request(c, id)?;
                RequestForm::of(c, &q)
            })
            .await
            .map_err(from_store)
    }

    pub async fn request_row(&self, id: i64) -> Result<RequestRow, LocalError> {
        self.store()
            .call(move |c| {
                Ok(
                    c.query_row(&format!("{REQUEST_ROW} WHERE r.id = ?1"), [id], request_row)
                        .optional()?,
                )
            })
            .await?
            .ok_or(LocalError::NotFound(Kind::Request, id))
    }

    pub async fn delete_request(&self, id: i64, by: Option<&str>) -> Result<(), LocalError> {
        self.delete_one(Kind::Request, id, "demande supprimée", by)
            .await
    }

    /// Deletes one record of the centre in one transaction, with its
    /// journal line (« action », « kind n° id »).
    async fn delete_one(
        &self,
        kind: Kind,
        id: i64,
        action: &str,
        by: Option<&str>,
    ) -> Result<(), LocalError> {
        let journal = self.journal_entry(by, action, &format!("{} n° {id}", kind.label()));
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                records::delete(&tx, kind, id)?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(from_store)
    }

    /// The demandes that pass the filter, newest first.
    pub async fn requests(&self, filter: RequestFilter) -> Result<RequestList, LocalError> {
        check_filter(&filter)?;
        Ok(self
            .store()
            .call(move |c| list_requests(c, &filter))
            .await?)
    }

    /// What the organisation and person fields offer while one types.
    pub async fn choices(&self) -> Result<Choices, LocalError> {
        Ok(self
            .store()
            .call(|c| {
                let mut stmt = c.prepare(
                    "SELECT CASE WHEN (SELECT count(*) FROM organisations o2 WHERE lower(o2.name) = lower(o.name)) > 1
                                 THEN o.name || ' (n° ' || o.id || ')' ELSE o.name END
                     FROM organisations o ORDER BY o.name COLLATE NOCASE",
                )?;
                let organisations = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut stmt = c.prepare(
                    "SELECT CASE WHEN (SELECT count(*) FROM persons p2 WHERE lower(p2.first_name || ' ' || p2.last_name) = lower(p.first_name || ' ' || p.last_name)) > 1
                                 THEN p.first_name || ' ' || p.last_name || ' (n° ' || p.id || ')'
                                 ELSE p.first_name || ' ' || p.last_name END,
                            o.name
                     FROM persons p LEFT JOIN organisations o ON o.id = p.organisation_id
                     ORDER BY p.last_name COLLATE NOCASE, p.first_name COLLATE NOCASE",
                )?;
                let persons = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(Choices {
                    organisations,
                    persons,
                })
            })
            .await?)
    }
}

// ---- Organisations and persons --------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganisationForm {
    pub name: String,
    pub org_type: String,
    pub sector: String,
    pub commune: String,
}

impl OrganisationForm {
    fn check(&self) -> Result<Organisation, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = required(Field::Name, &self.name, &mut errors);
        let name = bounded(Field::Name, &name, MAX_NAME, &mut errors);
        let org_type = bounded(Field::OrgType, &self.org_type, MAX_NAME, &mut errors);
        let sector = code(Field::Sector, List::Sector, &self.sector, &mut errors);
        let commune = bounded(Field::Commune, &self.commune, MAX_NAME, &mut errors);
        if errors.is_empty() {
            Ok(Organisation {
                id: 0,
                name,
                org_type,
                sector,
                commune,
            })
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonForm {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub organisation: String,
}

impl PersonForm {
    fn check(&self) -> Result<(Person, String), Vec<FieldError>> {
        let mut errors = Vec::new();
        let first_name = required(Field::FirstName, &self.first_name, &mut errors);
        let first_name = bounded(Field::FirstName, &first_name, MAX_NAME, &mut errors);
        let last_name = required(Field::LastName, &self.last_name, &mut errors);
        let last_name = bounded(Field::LastName, &last_name, MAX_NAME, &mut errors);
        let email = bounded(Field::Email, &self.email, MAX_NAME, &mut errors);
        if !email.is_empty() && (!email.contains('@') || email.contains(char::is_whitespace)) {
            errors.push(FieldError {
                field: Field::Email,
                problem: Problem::BadEmail(email.clone()),
            });
        }
        let phone = bounded(Field::Phone, &self.phone, 40, &mut errors);
        let organisation = bounded(
            Field::Organisation,
            &self.organisation,
            MAX_NAME,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            Person {
                id: 0,
                first_name,
                last_name,
                email: (!email.is_empty()).then_some(email),
                phone: (!phone.is_empty()).then_some(phone),
                organisation_id: None,
            },
            organisation,
        ))
    }
}

/// An organisation in the list, with what it is linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganisationRow {
    pub id: i64,
    pub name: String,
    pub org_type: String,
    pub sector: String,
    pub commune: String,
    pub persons: i64,
    pub requests: i64,
    pub loans: i64,
    pub accompaniments: i64,
}

/// A person in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRow {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organisation_id: Option<i64>,
    pub organisation: Option<String>,
    pub requests: i64,
}

const ORGANISATION_ROW: &str = "SELECT o.id, o.name, o.org_type, o.sector, o.commune,
        (SELECT count(*) FROM persons p WHERE p.organisation_id = o.id),
        (SELECT count(*) FROM requests r WHERE r.organisation_id = o.id),
        (SELECT count(*) FROM loans l WHERE l.organisation_id = o.id),
        (SELECT count(*) FROM accompaniments a WHERE a.organisation_id = o.id)
     FROM organisations o";

fn organisation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrganisationRow> {
    Ok(OrganisationRow {
        id: r.get(0)?,
        name: r.get(1)?,
        org_type: r.get(2)?,
        sector: r.get(3)?,
        commune: r.get(4)?,
        persons: r.get(5)?,
        requests: r.get(6)?,
        loans: r.get(7)?,
        accompaniments: r.get(8)?,
    })
}

const PERSON_ROW: &str =
    "SELECT p.id, p.first_name, p.last_name, p.email, p.phone, p.organisation_id, o.name,
        (SELECT count(*) FROM requests r WHERE r.person_id = p.id)
     FROM persons p LEFT JOIN organisations o ON o.id = p.organisation_id";

fn person_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PersonRow> {
    Ok(PersonRow {
        id: r.get(0)?,
        first_name: r.get(1)?,
        last_name: r.get(2)?,
        email: r.get(3)?,
        phone: r.get(4)?,
        organisation_id: r.get(5)?,
        organisation: r.get(6)?,
        requests: r.get(7)?,
    })
}

/// How names sort for people: accents and case aside (« École » with E).
fn sort_key(name: &str) -> String {
    clps_model::docs::normalize::fold(name)
}

/// `%text%` for LIKE, with its wildcards escaped.
fn like(text: &str) -> String {
    let escaped: String = text
        .trim()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// What to do with a person's demandes when the person is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonRequests {
    /// Keep them, without the person (their counts stay).
    Keep,
    /// Delete them too (the year's figures drop).
    Delete,
}

/// Everything the centre holds about one person, for their right of access.
#[derive(Debug, Clone, Serialize)]
pub struct PersonExport {
    pub centre: String,
    pub exported_at: i64,
    pub person: PersonRow,
    pub requests: Vec<RequestRow>,
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// Demandes kept, without name, so the year's counts stay.
    pub requests_kept: usize,
    /// Notes of those demandes emptied (free text may name the person).
    pub notes_cleared: usize,
}

impl Node {
    pub async fn organisations(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<OrganisationRow>, LocalError> {
        let pattern = like(text);
        Ok(self
            .store()
            .call(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{ORGANISATION_ROW} WHERE o.name LIKE ?1 ESCAPE '\\' OR o.commune LIKE ?1 ESCAPE '\\'"
                ))?;
                let mut rows: Vec<OrganisationRow> = stmt
                    .query_map(params![pattern], organisation_row)?
                    .collect::<rusqlite::Result<_>>()?;
                rows.sort_by_cached_key(|o| sort_key(&o.name));
                rows.truncate(limit);
                Ok(rows)
            })
            .await?)
    }

    pub async fn organisation(&self, id: i64) -> Result<OrganisationRow, LocalError> {
        self.store()
            .call(move |c| {
                Ok(c.query_row(
                    &format!("{ORGANISATION_ROW} WHERE o.id = ?1"),
                    [id],
                    organisation_row,
                )
                .optional()?)
            })
            .await?
            .ok_or(LocalError::NotFound(Kind::Organisation, id))
    }

    pub async fn organisation_form(&self, id: i64) -> Result<OrganisationForm, LocalError> {
        let o = self.organisation(id).await?;
        Ok(OrganisationForm {
            name: o.name,
            org_type: o.org_type,
            sector: o.sector,
            commune: o.commune,
        })
    }

    pub async fn save_organisation(
        &self,
        id: Option<i64>,
        form: &OrganisationForm,
        by: Option<&str>,
    ) -> Result<i64, LocalError> {
        let mut o = form.check().map_err(LocalError::Invalid)?;
        let journal = self.journal_entry(
            by,
            if id.is_some() {
                "organisation modifiée"
            } else {
                "organisation ajoutée"
            },
            "",
        );
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                if let Some(id) = id {
                    records::load_organisation(&tx, id)?;
                    o.id = id;
                }
                let id = records::save_organisation(&tx, &o)?;
                journal
                    .with_target(format!("organisation n° {id}"))
                    .write(&tx)?;
                tx.commit()?;
                Ok(id)
            })
            .await
            .map_err(from_store)
    }

    /// Deletes an organisation: its persons, demandes and loans stay,
    /// without it.
    pub async fn delete_organisation(&self, id: i64, by: Option<&str>) -> Result<(), LocalError> {
        self.delete_one(Kind::Organisation, id, "organisation supprimée", by)
            .await
    }

    pub async fn persons(
        &self,
        text: &str,
        organisation: Option<i64>,
        limit: usize,
    ) -> Result<Vec<PersonRow>, LocalError> {
        let pattern = like(text);
        Ok(self
            .store()
            .call(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{PERSON_ROW} WHERE (p.first_name || ' ' || p.last_name LIKE ?1 ESCAPE '\\'
                        OR p.last_name || ' ' || p.first_name LIKE ?1 ESCAPE '\\'
                        OR coalesce(p.email, '') LIKE ?1 ESCAPE '\\' OR coalesce(o.name, '') LIKE ?1 ESCAPE '\\')
                       AND (?2 IS NULL OR p.organisation_id = ?2)"
                ))?;
                let mut rows: Vec<PersonRow> = stmt
                    .query_map(params![pattern, organisation], person_row)?
                    .collect::<rusqlite::Result<_>>()?;
                rows.sort_by_cached_key(|p| (sort_key(&p.last_name), sort_key(&p.first_name)));
                rows.truncate(limit);
                Ok(rows)
            })
            .await?)
    }

    pub async fn person(&self, id: i64) -> Result<PersonRow, LocalError> {
        self.store()
            .call(move |c| {
                Ok(
                    c.query_row(&format!("{PERSON_ROW} WHERE p.id = ?1"), [id], person_row)
                        .optional()?,
                )
            })
            .await?
            .ok_or(LocalError::NotFound(Kind::Person, id))
    }

    pub async fn person_form(&self, id: i64) -> Result<PersonForm, LocalError> {
        let p = self.person(id).await?;
        let organisation = match p.organisation_id {
            Some(o) => self
                .store()
                .call(move |c| organisation_choice(c, o))
                .await
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(PersonForm {
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email.unwrap_or_default(),
            phone: p.phone.unwrap_or_default(),
            organisation,
        })
    }

    /// Adds or changes a person. The organisation must exist (it is picked
    /// from the list, not created from here).
    pub async fn save_person(
        &self,
        id: Option<i64>,
        form: &PersonForm,
        by: Option<&str>,
    ) -> Result<i64, LocalError> {
        let (mut p, organisation) = form.check().map_err(LocalError::Invalid)?;
        let journal = self.journal_entry(
            by,
            if id.is_some() {
                "personne modifiée"
            } else {
                "personne ajoutée"
            },
            "",
        );
        let outcome = self
            .store()
            .call(move |c| {
                let tx = c.transaction()?;
                if let Some(id) = id {
                    records::load_person(&tx, id)?;
                    p.id = id;
                }
                if !organisation.is_empty() {
                    let mut created = Created::default();
                    match resolve_organisation(&tx, &organisation, "autre", &mut created)? {
                        Ok(o) => p.organisation_id = o,
                        Err(e) => return Ok(Err(vec![e])),
                    }
                    if created.organisation.is_some() {
                        return Ok(Err(vec![FieldError {
                            field: Field::Organisation,
                            problem: Problem::NoSuchOrganisation(organisation),
                        }]));
                    }
                }
                let id = records::save_person(&tx, &p)?;
                journal
                    .with_target(format!("personne n° {id}"))
                    .write(&tx)?;
                tx.commit()?;
                Ok(Ok(id))
            })
            .await
            .map_err(from_store)?;
        outcome.map_err(LocalError::Invalid)
    }

    /// Deletes a person; their demandes are kept without them or deleted.
    pub async fn delete_person(
        &self,
        id: i64,
        requests: PersonRequests,
        by: Option<&str>,
    ) -> Result<usize, LocalError> {
        let journal = self.journal_entry(
            by,
            match requests {
                PersonRequests::Keep => "personne supprimée (demandes gardées)",
                PersonRequests::Delete => "personne et ses demandes supprimées",
            },
            &format!("personne n° {id}"),
        );
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                let n = match requests {
                    PersonRequests::Keep => 0,
                    PersonRequests::Delete => {
                        tx.execute("DELETE FROM requests WHERE person_id = ?1", [id])?
                    }
                };
                records::delete(&tx, Kind::Person, id)?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(n)
            })
            .await
            .map_err(from_store)
    }

    /// Everything held about a person (right of access).
    pub async fn export_person(&self, id: i64) -> Result<PersonExport, LocalError> {
        let person = self.person(id).await?;
        let requests = self
            .requests(RequestFilter {
                person_id: Some(id),
                per_page: 500,
                page: 1,
                ..RequestFilter::default()
            })
            .await?;
        let mut rows = requests.rows;
        let mut page = 1;
        while rows.len() < requests.total {
            page += 1;
            let more = self
                .requests(RequestFilter {
                    person_id: Some(id),
                    per_page: 500,
                    page,
                    ..RequestFilter::default()
                })
                .await?;
            if more.rows.is_empty() {
                break;
            }
            rows.extend(more.rows);
        }
        Ok(PersonExport {
            centre: self.centre().to_string(),
            exported_at: self.now(),
            person,
            requests: rows,
        })
    }

    /// Erases a person on request (right to erasure): the name, e-mail and
    /// phone go, and so do the notes of their demandes; the demandes stay,
    /// without a name, so the year's counts do not change.
    pub async fn erase_person(&self, id: i64, by: Option<&str>) -> Result<Erased, LocalError> {
        let journal = self.journal_entry(
            by,
            "personne effacée à sa demande",
            &format!("personne n° {id}"),
        );
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                records::load_person(&tx, id)?;
                let notes_cleared = tx.execute(
                    "UPDATE requests SET note = '' WHERE person_id = ?1 AND note != ''",
                    [id],
                )?;
                let requests_kept: i64 = tx.query_row(
                    "SELECT count(*) FROM requests WHERE person_id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                records::delete(&tx, Kind::Person, id)?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Erased {
                    requests_kept: usize::try_from(requests_kept).unwrap_or(0),
                    notes_cleared,
                })
            })
            .await
            .map_err(from_store)
    }
}

// ---- Accompaniments and events ------------------------------------------

/// The accompaniment form, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccompanimentForm {
    pub title: String,
    pub scheme: String,
    pub commune: String,
    pub start_date: String,
    pub themes: Vec<String>,
    pub axes: Vec<String>,
    pub organisation: String,
    pub note: String,
}

fn codes_of_list(
    field: Field,
    list: List,
    values: &[String],
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let v = v.trim();
        if v.is_empty() || out.iter().any(|x| x == v) {
            continue;
        }
        if !list.codes().contains(v) {
            errors.push(FieldError {
                field,
                problem: Problem::UnknownCode(v.to_owned()),
            });
        }
        out.push(v.to_owned());
    }
    out
}

impl AccompanimentForm {
    fn check(&self) -> Result<(records::Accompaniment, String), Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = required(Field::Title, &self.title, &mut errors);
        let title = bounded(Field::Title, &title, MAX_NAME, &mut errors);
        let scheme = self.scheme.trim().to_owned();
        if scheme.is_empty() {
            errors.push(FieldError {
                field: Field::Scheme,
                problem: Problem::Required,
            });
        } else if !vocab::SCHEMES.contains(&scheme.as_str()) {
            errors.push(FieldError {
                field: Field::Scheme,
                problem: Problem::UnknownCode(scheme.clone()),
            });
        }
        let commune = bounded(Field::Commune, &self.commune, MAX_NAME, &mut errors);
        let start_date = date(Field::Date, &self.start_date, &mut errors);
        let themes = codes_of_list(Field::Themes, List::Theme, &self.themes, &mut errors);
        let axes = codes_of_list(Field::Axes, List::Axis, &self.axes, &mut errors);
        let organisation = bounded(
            Field::Organisation,
            &self.organisation,
            MAX_NAME,
            &mut errors,
        );
        let note = bounded(Field::Note, &self.note, MAX_TEXT, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            records::Accompaniment {
                id: 0,
                title,
                scheme,
                commune,
                start_date,
                themes,
                axes,
                organisation_id: None,
                note,
            },
            organisation,
        ))
    }
}

/// The event form, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventForm {
    pub kind: String,
    pub title: String,
    pub start_date: String,
    pub end_date: String,
    /// Ids of the organising centres (this centre among them).
    pub centres: Vec<String>,
    /// Other organisers (partners), one per line; they stay at the centre.
    pub partners: String,
    /// Participants per profession code, as typed.
    pub participants: Vec<(String, String)>,
}

impl EventForm {
    fn check(&self) -> Result<records::Event, Vec<FieldError>> {
        let mut errors = Vec::new();
        let kind = self.kind.trim().to_owned();
        if kind.is_empty() {
            errors.push(FieldError {
                field: Field::Kind,
                problem: Problem::Required,
            });
        } else if !records::EVENT_KINDS.contains(&kind.as_str()) {
            errors.push(FieldError {
                field: Field::Kind,
                problem: Problem::UnknownCode(kind.clone()),
            });
        }
        let title = required(Field::Title, &self.title, &mut errors);
        let title = bounded(Field::Title, &title, MAX_NAME, &mut errors);
        let start_date = date(Field::Date, &self.start_date, &mut errors);
        let end_date = if self.end_date.trim().is_empty() {
            start_date.clone()
        } else {
            date(Field::EndDate, &self.end_date, &mut errors)
        };
        if !start_date.is_empty() && !end_date.is_empty() && end_date < start_date {
            errors.push(FieldError {
                field: Field::EndDate,
                problem: Problem::DateOrder,
            });
        }
        let mut organisers: Vec<String> = Vec::new();
        for c in &self.centres {
            match clps_model::CentreId::new(c.trim()) {
                Ok(id) if !organisers.contains(&id.to_string()) => organisers.push(id.to_string()),
                Ok(_) => {}
                Err(_) => errors.push(FieldError {
                    field: Field::Organisers,
                    problem: Problem::UnknownCode(c.clone()),
                }),
            }
        }
        let partners = bounded(Field::Organisers, &self.partners, MAX_TEXT, &mut errors);
        for p in partners.lines().map(str::trim).filter(|p| !p.is_empty()) {
            if !organisers.iter().any(|o| o == p) {
                organisers.push(p.to_owned());
            }
        }
        if organisers.is_empty() {
            errors.push(FieldError {
                field: Field::Organisers,
                problem: Problem::Required,
            });
        }
        let mut participants = Vec::new();
        for (profession, n) in &self.participants {
            let n = n.trim();
            if n.is_empty() {
                continue;
            }
            if !List::Profession.codes().contains(profession) {
                errors.push(FieldError {
                    field: Field::Participants,
                    problem: Problem::UnknownCode(profession.clone()),
                });
                continue;
            }
            match n.parse::<u32>() {
                Ok(0) => {}
                Ok(k) => participants.push((profession.clone(), i64::from(k))),
                Err(_) => errors.push(FieldError {
                    field: Field::Participants,
                    problem: Problem::NotACount(n.to_owned()),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(records::Event {
            id: 0,
            kind,
            title,
            start_date,
            end_date,
            organisers,
            participants,
        })
    }
}

/// An accompaniment in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccompanimentRow {
    pub id: i64,
    pub title: String,
    pub scheme: String,
    pub commune: String,
    pub start_date: String,
    pub themes: Vec<String>,
    pub axes: Vec<String>,
    pub organisation: Option<String>,
}

/// An event in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub start_date: String,
    pub end_date: String,
    pub organisers: Vec<String>,
    pub participants: i64,
}

fn year_bounds(year: i32) -> (String, String) {
    (format!("{year:04}-"), format!("{:04}-", year + 1))
}

impl Node {
    pub async fn accompaniments(&self, year: i32) -> Result<Vec<AccompanimentRow>, LocalError> {
        Ok(self
            .store()
            .call(move |c| {
                let (from, to) = year_bounds(year);
                let mut stmt = c.prepare_cached(
                    "SELECT a.id, a.title, a.scheme, a.commune, a.start_date, o.name,
                        (SELECT group_concat(theme, ',') FROM accompaniment_themes t WHERE t.accompaniment_id = a.id),
                        (SELECT group_concat(axis, ',') FROM accompaniment_axes x WHERE x.accompaniment_id = a.id)
                     FROM accompaniments a LEFT JOIN organisations o ON o.id = a.organisation_id
                     WHERE a.start_date >= ?1 AND a.start_date < ?2 ORDER BY a.start_date DESC, a.id DESC",
                )?;
                let split = |s: Option<String>| -> Vec<String> {
                    s.map(|s| s.split(',').map(str::to_owned).collect())
                        .unwrap_or_default()
                };
                let rows = stmt
                    .query_map(params![from, to], |r| {
                        Ok(AccompanimentRow {
                            id: r.get(0)?,
                            title: r.get(1)?,
                            scheme: r.get(2)?,
                            commune: r.get(3)?,
                            start_date: r.get(4)?,
                            organisation: r.get(5)?,
                            themes: split(r.get(6)?),
                            axes: split(r.get(7)?),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    pub async fn accompaniment_form(&self, id: i64) -> Result<AccompanimentForm, LocalError> {
        self.store()
            .call(move |c| {
                let a = records::load_accompaniment(c, id)?;
                Ok(AccompanimentForm {
                    title: a.title,
                    scheme: a.scheme,
                    commune: a.commune,
                    start_date: a.start_date,
                    themes: a.themes,
                    axes: a.axes,
                    organisation: match a.organisation_id {
                        Some(o) => organisation_choice(c, o)?,
                        None => String::new(),
                    },
                    note: a.note,
                })
            })
            .await
            .map_err(from_store)
    }

    /// Adds or changes an accompaniment; a new organisation name creates it.
    pub async fn save_accompaniment(
        &self,
        id: Option<i64>,
        form: &AccompanimentForm,
        by: Option<&str>,
    ) -> Result<(i64, Created), LocalError> {
        let (mut a, organisation) = form.check().map_err(LocalError::Invalid)?;
        let journal = self.journal_entry(
            by,
            if id.is_some() {
                "accompagnement modifié"
            } else {
                "accompagnement ajouté"
            },
            "",
        );
        let outcome = self
            .store()
            .call(move |c| {
                let tx = c.transaction()?;
                if let Some(id) = id {
                    records::load_accompaniment(&tx, id)?;
                    a.id = id;
                }
                let mut created = Created::default();
                match resolve_organisation(&tx, &organisation, "autre", &mut created)? {
                    Ok(o) => a.organisation_id = o,
                    Err(e) => return Ok(Err(vec![e])),
                }
                let id = records::save_accompaniment(&tx, &a)?;
                journal
                    .with_target(format!("accompagnement n° {id}"))
                    .write(&tx)?;
                tx.commit()?;
                Ok(Ok((id, created)))
            })
            .await
            .map_err(from_store)?;
        outcome.map_err(LocalError::Invalid)
    }

    pub async fn events(&self, year: i32) -> Result<Vec<EventRow>, LocalError> {
        Ok(self
            .store()
            .call(move |c| {
                let (from, to) = year_bounds(year);
                let mut stmt = c.prepare_cached(
                    "SELECT e.id, e.kind, e.title, e.start_date, e.end_date,
                        (SELECT group_concat(organiser, char(10)) FROM event_organisers g WHERE g.event_id = e.id),
                        coalesce((SELECT sum(n) FROM event_participants p WHERE p.event_id = e.id), 0)
                     FROM events e WHERE e.start_date >= ?1 AND e.start_date < ?2
                     ORDER BY e.start_date DESC, e.id DESC",
                )?;
                let rows = stmt
                    .query_map(params![from, to], |r| {
                        let organisers: Option<String> = r.get(5)?;
                        Ok(EventRow {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            title: r.get(2)?,
                            start_date: r.get(3)?,
                            end_date: r.get(4)?,
                            organisers: organisers
                                .map(|o| o.lines().map(str::to_owned).collect())
                                .unwrap_or_default(),
                            participants: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    pub async fn event_form(&self, id: i64) -> Result<EventForm, LocalError> {
        self.store()
            .call(move |c| {
                let e = records::load_event(c, id)?;
                let (centres, partners): (Vec<String>, Vec<String>) = e
                    .organisers
                    .into_iter()
                    .partition(|o| clps_model::CentreId::new(o).is_ok());
                Ok(EventForm {
                    kind: e.kind,
                    title: e.title,
                    start_date: e.start_date,
                    end_date: e.end_date,
                    centres,
                    partners: partners.join("\n"),
                    participants: e
                        .participants
                        .into_iter()
                        .map(|(p, n)| (p, n.to_string()))
                        .collect(),
                })
            })
            .await
            .map_err(from_store)
    }

    /// Adds or changes an event. Co-organising centres are named by their
    /// ids (the network counts a co-organised event once); partners stay at
    /// the centre and are only counted.
    pub async fn save_event(
        &self,
        id: Option<i64>,
        form: &EventForm,
        by: Option<&str>,
    ) -> Result<i64, LocalError> {
        let mut e = form.check().map_err(LocalError::Invalid)?;
        let journal = self.journal_entry(
            by,
            if id.is_some() {
                "événement modifié"
            } else {
                "événement ajouté"
            },
            "",
        );
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                if let Some(id) = id {
                    records::load_event(&tx, id)?;
                    e.id = id;
                }
                let id = records::save_event(&tx, &e)?;
                journal
                    .with_target(format!("événement n° {id}"))
                    .write(&tx)?;
                tx.commit()?;
                Ok(id)
            })
            .await
            .map_err(from_store)
    }

    /// Deletes an accompaniment or an event (its themes, axes, organisers
    /// and participant counts go with it).
    pub async fn delete_activity(
        &self,
        kind: Kind,
        id: i64,
        by: Option<&str>,
    ) -> Result<(), LocalError> {
        if !matches!(kind, Kind::Accompaniment | Kind::Event) {
            return Err(LocalError::NotFound(kind, id));
        }
        self.delete_one(kind, id, &format!("{} supprimé", kind.label()), by)
            .await
    }
}

/// The label of a code of a list, or the code itself if it is unknown.
pub fn label(list: List, code: &str) -> String {
    list.codes().label(code).unwrap_or(code).to_owned()
}

/// The scheme (dispositif) labels.
pub fn scheme_label(code: &str) -> &str {
    match code {
        "general" => "Général",
        "assuetudes" => "Assuétudes",
        "evras" => "EVRAS",
        "covid" => "Covid",
        _ => code,
    }
}

pub fn schemes() -> &'static [&'static str] {
    &vocab::SCHEMES
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clps_model::CentreId;

    fn form() -> RequestForm {
        RequestForm {
            date: "15/03/2021".into(),
            service_type: "pret".into(),
            sector: "enseignement".into(),
            profession: "enseignant_directeur".into(),
            contact_mode: "mail".into(),
            themes: vec!["evras".into()],
            organisation: "Athénée royal de Thuin".into(),
            person: "Marie Dubois".into(),
            note: "Jeu pour une classe de 5e".into(),
        }
    }

    async fn node() -> Node {
        Node::in_memory(&CentreId::new("charleroi-thuin").unwrap(), 1_700_000_000, 1)
            .await
            .unwrap()
    }

    #[test]
    fn dates_are_read_as_staff_write_them() {
        assert_eq!(parse_date("15/03/2021").as_deref(), Some("2021-03-15"));
        assert_eq!(parse_date("5-3-2021").as_deref(), Some("2021-03-05"));
        assert_eq!(parse_date("2021-03-15").as_deref(), Some("2021-03-15"));
        assert_eq!(parse_date("30/02/2021"), None);
        assert_eq!(parse_date("15/03/21"), None);
        assert_eq!(parse_date("demain"), None);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let bad = RequestForm {
            date: "31/04/2021".into(),
            service_type: String::new(),
            sector: "astronautique".into(),
            themes: vec![],
            person: "Marie".into(),
            ..form()
        };
        let errors = bad.check().err().unwrap();
        let fields: Vec<Field> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                Field::Date,
                Field::ServiceType,
                Field::Sector,
                Field::Themes,
                Field::Person
            ]
        );
    }

    #[tokio::test]
    async fn names_are_resolved_or_created_once() {
        let node = node().await;
        let (a, created) = node.save_request(None, &form(), Some("doc")).await.unwrap();
        assert_eq!(
            created,
            Created {
                organisation: Some("Athénée royal de Thuin".into()),
                person: Some("Marie Dubois".into()),
            }
        );
        // The same names, typed differently in case, find the same rows.
        let again = RequestForm {
            organisation: "athénée royal de thuin".into(),
            person: "MARIE DUBOIS".into(),
            ..form()
        };
        let (b, created) = node.save_request(None, &again, None).await.unwrap();
        assert_eq!(created, Created::default());
        let (ra, rb) = (
            node.request_row(a).await.unwrap(),
            node.request_row(b).await.unwrap(),
        );
        assert_eq!(ra.organisation, rb.organisation);
        assert_eq!(ra.person.as_deref(), Some("Marie Dubois"));
        assert_eq!(node.organisations("", 10).await.unwrap().len(), 1);
        let persons = node.persons("dubois", None, 10).await.unwrap();
        assert_eq!(persons.len(), 1);
        assert_eq!(persons[0].requests, 2);
        assert_eq!(
            persons[0].organisation.as_deref(),
            Some("Athénée royal de Thuin")
        );
    }

    #[tokio::test]
    async fn a_refused_form_writes_nothing() {
        let node = node().await;
        let bad = RequestForm {
            profession: "pilote".into(),
            ..form()
        };
        let err = node.save_request(None, &bad, None).await.unwrap_err();
        assert!(matches!(err, LocalError::Invalid(ref e) if e.len() == 1));
        assert_eq!(
            node.requests(RequestFilter::default()).await.unwrap().total,
            0
        );
        assert!(node.organisations("", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn erasure_keeps_the_counts_and_drops_the_name() {
        let node = node().await;
        let (id, _) = node.save_request(None, &form(), None).await.unwrap();
        let person = node.persons("", None, 10).await.unwrap()[0].id;
        let export = node.export_person(person).await.unwrap();
        assert_eq!(export.requests.len(), 1);
        assert_eq!(export.requests[0].note, "Jeu pour une classe de 5e");
        let erased = node.erase_person(person, Some("admin")).await.unwrap();
        assert_eq!(
            erased,
            Erased {
                requests_kept: 1,
                notes_cleared: 1
            }
        );
        let row = node.request_row(id).await.unwrap();
        assert_eq!(row.person, None);
        assert_eq!(row.note, "");
        assert_eq!(row.service_type, "pret");
        assert!(node.persons("", None, 10).await.unwrap().is_empty());
        assert!(matches!(
            node.person(person).await,
            Err(LocalError::NotFound(Kind::Person, _))
        ));
    }

    #[tokio::test]
    async fn events_name_centres_and_keep_partners_apart() {
        let node = node().await;
        let form = EventForm {
            kind: "formation".into(),
            title: "Formation EVRAS".into(),
            start_date: "12/10/2021".into(),
            end_date: String::new(),
            centres: vec!["charleroi-thuin".into(), "namur".into()],
            partners: "Planning familial de Thuin\n".into(),
            participants: vec![
                ("enseignant_directeur".into(), "12".into()),
                ("travailleur_social".into(), String::new()),
            ],
        };
        let id = node.save_event(None, &form, None).await.unwrap();
        let back = node.event_form(id).await.unwrap();
        assert_eq!(back.end_date, "2021-10-12", "one-day event");
        assert_eq!(back.centres, vec!["charleroi-thuin", "namur"]);
        assert_eq!(back.partners, "Planning familial de Thuin");
        assert_eq!(
            back.participants,
            vec![("enseignant_directeur".to_owned(), "12".to_owned())]
        );
        let rows = node.events(2021).await.unwrap();
        assert_eq!(rows[0].participants, 12);
        let bad = EventForm {
            centres: vec!["atlantide".into()],
            partners: String::new(),
            participants: vec![("enseignant_directeur".into(), "douze".into())],
            end_date: "01/10/2021".into(),
            ..form
        };
        let errors = match node.save_event(None, &bad, None).await {
            Err(LocalError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        let fields: Vec<Field> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                Field::EndDate,
                Field::Organisers,
                Field::Organisers,
                Field::Participants
            ]
        );
        assert_eq!(node.events(2021).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn filters_select_and_check() {
        let node = node().await;
        node.save_request(None, &form(), None).await.unwrap();
        let other = RequestForm {
            date: "2021-06-01".into(),
            service_type: "diffusion".into(),
            themes: vec!["tic".into()],
            ..form()
        };
        node.save_request(None, &other, None).await.unwrap();
        let of = |f: RequestFilter| {
            let node = node.clone();
            async move { node.requests(f).await.unwrap().total }
        };
        assert_eq!(of(RequestFilter::default()).await, 2);
        assert_eq!(
            of(RequestFilter {
                theme: Some("tic".into()),
                ..RequestFilter::default()
            })
            .await,
            1
        );
        assert_eq!(
            of(RequestFilter {
                from: Some("2021-04-01".into()),
                to: Some("2021-12-31".into()),
                ..RequestFilter::default()
            })
            .await,
            1
        );
        let err = node
            .requests(RequestFilter {
                from: Some("2021-06-01".into()),
                to: Some("2021-01-01".into()),
                ..RequestFilter::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, LocalError::Invalid(ref e) if e[0].problem == Problem::DateOrder));
    }
}
