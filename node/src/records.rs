//! The centre's local records: organisations, persons, requests (*demandes*),
//! loans (*prêts*), accompaniments and events.
//!
//! These records never leave the node as such; only aggregate counts computed
//! from them are published (see `stats`). Every record is validated before it
//! is written: codes against the shared code lists, dates as ISO dates, and
//! references to other records as existing rows. Functions here run on the
//! storage thread and take a `rusqlite::Connection` or `Transaction`.

use std::fmt;

use clps_model::vocab::{self, CodeList};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// The kinds of local record, with their French names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Organisation,
    Person,
    Request,
    Loan,
    Accompaniment,
    Event,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Organisation => "organisations",
            Kind::Person => "persons",
            Kind::Request => "requests",
            Kind::Loan => "loans",
            Kind::Accompaniment => "accompaniments",
            Kind::Event => "events",
        }
    }

    /// French name, as staff say it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Organisation => "organisation",
            Kind::Person => "personne",
            Kind::Request => "demande",
            Kind::Loan => "prêt",
            Kind::Accompaniment => "accompagnement",
            Kind::Event => "événement",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("code inconnu « {code} » pour {list} (codes admis : {known})")]
    UnknownCode {
        list: &'static str,
        code: String,
        known: String,
    },
    #[error("date invalide « {0} » : le format attendu est AAAA-MM-JJ, par exemple 2021-03-15")]
    BadDate(String),
    #[error("{0}")]
    Invalid(String),
    #[error("champ obligatoire manquant : --{0}")]
    Missing(&'static str),
    #[error("aucun(e) {kind} n° {id}")]
    NotFound { kind: &'static str, id: i64 },
}

/// Which code list a field draws from.
#[derive(Debug, Clone, Copy)]
pub enum List {
    ServiceType,
    Sector,
    Profession,
    ContactMode,
    Theme,
    DocumentType,
    Axis,
}

impl List {
    pub fn codes(self) -> &'static CodeList {
        let v = vocab::get();
        match self {
            List::ServiceType => &v.service_types,
            List::Sector => &v.requester_sectors,
            List::Profession => &v.requester_professions,
            List::ContactMode => &v.contact_modes,
            List::Theme => &v.themes,
            List::DocumentType => &v.document_types,
            List::Axis => &v.accompaniment_axes,
        }
    }

    fn name(self) -> &'static str {
        match self {
            List::ServiceType => "le type de service",
            List::Sector => "le secteur du demandeur",
            List::Profession => "la profession du demandeur",
            List::ContactMode => "le mode de contact",
            List::Theme => "la thématique",
            List::DocumentType => "le type de document",
            List::Axis => "l'axe d'accompagnement",
        }
    }

    pub fn check(self, code: &str) -> Result<(), RecordError> {
        let list = self.codes();
        if list.contains(code) {
            Ok(())
        } else {
            Err(RecordError::UnknownCode {
                list: self.name(),
                code: code.to_owned(),
                known: list.codes().collect::<Vec<_>>().join(", "),
            })
        }
    }
}

/// Checks an ISO date (`2021-03-15`), calendar included.
pub fn check_date(date: &str) -> Result<(), RecordError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(date, &format) {
        Ok(_) if date.len() == 10 => Ok(()),
        _ => Err(RecordError::BadDate(date.to_owned())),
    }
}

fn check_scheme(scheme: &str) -> Result<(), RecordError> {
    if vocab::SCHEMES.contains(&scheme) {
        Ok(())
    } else {
        Err(RecordError::Invalid(format!(
            "dispositif inconnu « {scheme} » (dispositifs admis : {})",
            vocab::SCHEMES.join(", ")
        )))
    }
}

fn check_not_empty(field: &'static str, value: &str) -> Result<(), RecordError> {
    if value.trim().is_empty() {
        Err(RecordError::Missing(field))
    } else {
        Ok(())
    }
}

/// An organisation: partner or member (schools, CPAS, services...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Organisation {
    pub id: i64,
    pub name: String,
    pub org_type: String,
    pub sector: String,
    pub commune: String,
}

/// A contact person. Private to the centre.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Person {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organisation_id: Option<i64>,
}

/// A *demande*: one contact with the centre.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Request {
    pub id: i64,
    pub date: String,
    pub service_type: String,
    pub sector: String,
    pub profession: String,
    pub contact_mode: String,
    pub themes: Vec<String>,
    pub organisation_id: Option<i64>,
    pub person_id: Option<i64>,
    pub note: String,
}

/// A *prêt*: one physical support lent to an organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Loan {
    pub id: i64,
    pub item_ref: String,
    pub document_type: String,
    pub theme: Option<String>,
    pub organisation_id: Option<i64>,
    pub out_date: String,
    pub due_date: String,
    pub returned_date: Option<String>,
}

/// A methodological accompaniment of a project.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Accompaniment {
    pub id: i64,
    pub title: String,
    pub scheme: String,
    pub commune: String,
    pub start_date: String,
    pub themes: Vec<String>,
    pub axes: Vec<String>,
    pub organisation_id: Option<i64>,
    pub note: String,
}

/// A training, exchange workshop or concertation meeting.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub start_date: String,
    pub end_date: String,
    /// Organising centres (ids) or partners; a co-organised event names all.
    pub organisers: Vec<String>,
    /// Participants per profession code.
    pub participants: Vec<(String, i64)>,
}

pub const EVENT_KINDS: [&str; 3] = ["formation", "atelier", "concertation"];

impl Organisation {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_not_empty("nom", &self.name)?;
        List::Sector.check(&self.sector)
    }
}

impl Person {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_not_empty("prenom", &self.first_name)?;
        check_not_empty("nom", &self.last_name)?;
        if let Some(email) = &self.email
            && (!email.contains('@') || email.contains(char::is_whitespace))
        {
            return Err(RecordError::Invalid(format!(
                "adresse e-mail invalide « {email} »"
            )));
        }
        Ok(())
    }
}

impl Request {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_date(&self.date)?;
        List::ServiceType.check(&self.service_type)?;
        List::Sector.check(&self.sector)?;
        List::Profession.check(&self.profession)?;
        List::ContactMode.check(&self.contact_mode)?;
        if self.themes.is_empty() {
            return Err(RecordError::Missing("theme"));
        }
        for theme in &self.themes {
            List::Theme.check(theme)?;
        }
        Ok(())
    }
}

impl Loan {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_not_empty("item", &self.item_ref)?;
        List::DocumentType.check(&self.document_type)?;
        if let Some(theme) = &self.theme {
            List::Theme.check(theme)?;
        }
        check_date(&self.out_date)?;
        check_date(&self.due_date)?;
        if self.due_date < self.out_date {
            return Err(RecordError::Invalid(
                "la date de retour prévue précède la date de sortie".into(),
            ));
        }
        if let Some(back) = &self.returned_date {
            check_date(back)?;
            if *back < self.out_date {
                return Err(RecordError::Invalid(
                    "la date de retour précède la date de sortie".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Accompaniment {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_not_empty("titre", &self.title)?;
        check_scheme(&self.scheme)?;
        check_date(&self.start_date)?;
        for theme in &self.themes {
            List::Theme.check(theme)?;
        }
        for axis in &self.axes {
            List::Axis.check(axis)?;
        }
        Ok(())
    }
}

impl Event {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_not_empty("titre", &self.title)?;
        if !EVENT_KINDS.contains(&self.kind.as_str()) {
            return Err(RecordError::Invalid(format!(
                "type d'événement inconnu « {} » (types admis : {})",
                self.kind,
                EVENT_KINDS.join(", ")
            )));
        }
        check_date(&self.start_date)?;
        check_date(&self.end_date)?;
        if self.end_date < self.start_date {
            return Err(RecordError::Invalid(
                "la date de fin précède la date de début".into(),
            ));
        }
        if self.organisers.is_empty() {
            return Err(RecordError::Missing("organisateur"));
        }
        for (profession, n) in &self.participants {
            List::Profession.check(profession)?;
            if *n < 0 {
                return Err(RecordError::Invalid(
                    "un nombre de participants ne peut pas être négatif".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Errors of record operations: invalid input or storage failure.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

fn ensure_exists(conn: &Connection, kind: Kind, id: Option<i64>) -> Result<(), OpError> {
    if let Some(id) = id {
        let found: Option<i64> = conn
            .query_row(
                &format!("SELECT id FROM {} WHERE id = ?1", kind.table()),
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_none() {
            return Err(RecordError::NotFound {
                kind: kind.label(),
                id,
            }
            .into());
        }
    }
    Ok(())
}

// ---- organisations -------------------------------------------------------

pub fn save_organisation(tx: &Transaction<'_>, o: &Organisation) -> Result<i64, OpError> {
    o.validate()?;
    if o.id == 0 {
        tx.execute(
            "INSERT INTO organisations (name, org_type, sector, commune) VALUES (?1, ?2, ?3, ?4)",
            params![o.name, o.org_type, o.sector, o.commune],
        )?;
        Ok(tx.last_insert_rowid())
    } else {
        tx.execute(
            "UPDATE organisations SET name = ?2, org_type = ?3, sector = ?4, commune = ?5 WHERE id = ?1",
            params![o.id, o.name, o.org_type, o.sector, o.commune],
        )?;
        Ok(o.id)
    }
}

pub fn load_organisation(conn: &Connection, id: i64) -> Result<Organisation, OpError> {
    conn.query_row(
        "SELECT id, name, org_type, sector, commune FROM organisations WHERE id = ?1",
        [id],
        |r| {
            Ok(Organisation {
                id: r.get(0)?,
                name: r.get(1)?,
                org_type: r.get(2)?,
                sector: r.get(3)?,
                commune: r.get(4)?,
            })
        },
    )
    .optional()?
    .ok_or(OpError::Record(RecordError::NotFound {
        kind: Kind::Organisation.label(),
        id,
    }))
}

// ---- persons --------------------------------------------------------------

pub fn save_person(tx: &Transaction<'_>, p: &Person) -> Result<i64, OpError> {
    p.validate()?;
    ensure_exists(tx, Kind::Organisation, p.organisation_id)?;
    if p.id == 0 {
        tx.execute(
            "INSERT INTO persons (first_name, last_name, email, phone, organisation_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.first_name, p.last_name, p.email, p.phone, p.organisation_id],
        )?;
        Ok(tx.last_insert_rowid())
    } else {
        tx.execute(
            "UPDATE persons SET first_name = ?2, last_name = ?3, email = ?4, phone = ?5, organisation_id = ?6 WHERE id = ?1",
            params![p.id, p.first_name, p.last_name, p.email, p.phone, p.organisation_id],
        )?;
        Ok(p.id)
    }
}

pub fn load_person(conn: &Connection, id: i64) -> Result<Person, OpError> {
    conn.query_row(
        "SELECT id, first_name, last_name, email, phone, organisation_id FROM persons WHERE id = ?1",
        [id],
        |r| {
            Ok(Person {
                id: r.get(0)?,
                first_name: r.get(1)?,
                last_name: r.get(2)?,
                email: r.get(3)?,
                phone: r.get(4)?,
                organisation_id: r.get(5)?,
            })
        },
    )
    .optional()?
    .ok_or(OpError::Record(RecordError::NotFound {
        kind: Kind::Person.label(),
        id,
    }))
}

// ---- requests -------------------------------------------------------------

pub fn save_request(tx: &Transaction<'_>, q: &Request) -> Result<i64, OpError> {
    q.validate()?;
    ensure_exists(tx, Kind::Organisation, q.organisation_id)?;
    ensure_exists(tx, Kind::Person, q.person_id)?;
    let id = if q.id == 0 {
        tx.prepare_cached(
            "INSERT INTO requests (date, service_type, sector, profession, contact_mode, organisation_id, person_id, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            q.date,
            q.service_type,
            q.sector,
            q.profession,
            q.contact_mode,
            q.organisation_id,
            q.person_id,
            q.note
        ])?;
        tx.last_insert_rowid()
    } else {
        tx.execute(
            "UPDATE requests SET date = ?2, service_type = ?3, sector = ?4, profession = ?5, contact_mode = ?6,
             organisation_id = ?7, person_id = ?8, note = ?9 WHERE id = ?1",
            params![
                q.id,
                q.date,
                q.service_type,
                q.sector,
                q.profession,
                q.contact_mode,
                q.organisation_id,
                q.person_id,
                q.note
            ],
        )?;
        tx.execute("DELETE FROM request_themes WHERE request_id = ?1", [q.id])?;
        q.id
    };
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO request_themes (request_id, theme) VALUES (?1, ?2)",
    )?;
    for theme in &q.themes {
        insert.execute(params![id, theme])?;
    }
    Ok(id)
}

fn codes_of(conn: &Connection, sql: &str, id: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

pub fn load_request(conn: &Connection, id: i64) -> Result<Request, OpError> {
    let mut q = conn
        .query_row(
            "SELECT id, date, service_type, sector, profession, contact_mode, organisation_id, person_id, note
             FROM requests WHERE id = ?1",
            [id],
            |r| {
                Ok(Request {
                    id: r.get(0)?,
                    date: r.get(1)?,
                    service_type: r.get(2)?,
                    sector: r.get(3)?,
                    profession: r.get(4)?,
                    contact_mode: r.get(5)?,
                    themes: Vec::new(),
                    organisation_id: r.get(6)?,
                    person_id: r.get(7)?,
                    note: r.get(8)?,
                })
            },
        )
        .optional()?
        .ok_or(OpError::Record(RecordError::NotFound {
            kind: Kind::Request.label(),
            id,
        }))?;
    q.themes = codes_of(
        conn,
        "SELECT theme FROM request_themes WHERE request_id = ?1 ORDER BY theme",
        id,
    )?;
    Ok(q)
}

// ---- loans ----------------------------------------------------------------

pub fn save_loan(tx: &Transaction<'_>, l: &Loan) -> Result<i64, OpError> {
    l.validate()?;
    ensure_exists(tx, Kind::Organisation, l.organisation_id)?;
    if l.id == 0 {
        tx.prepare_cached(
            "INSERT INTO loans (item_ref, document_type, theme, organisation_id, out_date, due_date, returned_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            l.item_ref,
            l.document_type,
            l.theme,
            l.organisation_id,
            l.out_date,
            l.due_date,
            l.returned_date
        ])?;
        Ok(tx.last_insert_rowid())
    } else {
        tx.execute(
            "UPDATE loans SET item_ref = ?2, document_type = ?3, theme = ?4, organisation_id = ?5, out_date = ?6,
             due_date = ?7, returned_date = ?8 WHERE id = ?1",
            params![
                l.id,
                l.item_ref,
                l.document_type,
                l.theme,
                l.organisation_id,
                l.out_date,
                l.due_date,
                l.returned_date
            ],
        )?;
        Ok(l.id)
    }
}

pub fn load_loan(conn: &Connection, id: i64) -> Result<Loan, OpError> {
    conn.query_row(
        "SELECT id, item_ref, document_type, theme, organisation_id, out_date, due_date, returned_date
         FROM loans WHERE id = ?1",
        [id],
        |r| {
            Ok(Loan {
                id: r.get(0)?,
                item_ref: r.get(1)?,
                document_type: r.get(2)?,
                theme: r.get(3)?,
                organisation_id: r.get(4)?,
                out_date: r.get(5)?,
                due_date: r.get(6)?,
                returned_date: r.get(7)?,
            })
        },
    )
    .optional()?
    .ok_or(OpError::Record(RecordError::NotFound {
        kind: Kind::Loan.label(),
        id,
    }))
}

// ---- accompaniments -------------------------------------------------------

pub fn save_accompaniment(tx: &Transaction<'_>, a: &Accompaniment) -> Result<i64, OpError> {
    a.validate()?;
    ensure_exists(tx, Kind::Organisation, a.organisation_id)?;
    let id =
        if a.id == 0 {
            tx.execute(
            "INSERT INTO accompaniments (title, scheme, commune, start_date, organisation_id, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.title, a.scheme, a.commune, a.start_date, a.organisation_id, a.note],
        )?;
            tx.last_insert_rowid()
        } else {
            tx.execute(
                "UPDATE accompaniments SET title = ?2, scheme = ?3, commune = ?4, start_date = ?5,
             organisation_id = ?6, note = ?7 WHERE id = ?1",
                params![
                    a.id,
                    a.title,
                    a.scheme,
                    a.commune,
                    a.start_date,
                    a.organisation_id,
                    a.note
                ],
            )?;
            tx.execute(
                "DELETE FROM accompaniment_themes WHERE accompaniment_id = ?1",
                [a.id],
            )?;
            tx.execute(
                "DELETE FROM accompaniment_axes WHERE accompaniment_id = ?1",
                [a.id],
            )?;
            a.id
        };
    for theme in &a.themes {
        tx.execute(
            "INSERT OR IGNORE INTO accompaniment_themes VALUES (?1, ?2)",
            params![id, theme],
        )?;
    }
    for axis in &a.axes {
        tx.execute(
            "INSERT OR IGNORE INTO accompaniment_axes VALUES (?1, ?2)",
            params![id, axis],
        )?;
    }
    Ok(id)
}

pub fn load_accompaniment(conn: &Connection, id: i64) -> Result<Accompaniment, OpError> {
    let mut a = conn
        .query_row(
            "SELECT id, title, scheme, commune, start_date, organisation_id, note FROM accompaniments WHERE id = ?1",
            [id],
            |r| {
                Ok(Accompaniment {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    scheme: r.get(2)?,
                    commune: r.get(3)?,
                    start_date: r.get(4)?,
                    themes: Vec::new(),
                    axes: Vec::new(),
                    organisation_id: r.get(5)?,
                    note: r.get(6)?,
                })
            },
        )
        .optional()?
        .ok_or(OpError::Record(RecordError::NotFound {
            kind: Kind::Accompaniment.label(),
            id,
        }))?;
    a.themes = codes_of(
        conn,
        "SELECT theme FROM accompaniment_themes WHERE accompaniment_id = ?1 ORDER BY theme",
        id,
    )?;
    a.axes = codes_of(
        conn,
        "SELECT axis FROM accompaniment_axes WHERE accompaniment_id = ?1 ORDER BY axis",
        id,
    )?;
    Ok(a)
}

// ---- events ---------------------------------------------------------------

pub fn save_event(tx: &Transaction<'_>, e: &Event) -> Result<i64, OpError> {
    e.validate()?;
    let id = if e.id == 0 {
        tx.execute(
            "INSERT INTO events (kind, title, start_date, end_date) VALUES (?1, ?2, ?3, ?4)",
            params![e.kind, e.title, e.start_date, e.end_date],
        )?;
        tx.last_insert_rowid()
    } else {
        tx.execute(
            "UPDATE events SET kind = ?2, title = ?3, start_date = ?4, end_date = ?5 WHERE id = ?1",
            params![e.id, e.kind, e.title, e.start_date, e.end_date],
        )?;
        tx.execute("DELETE FROM event_organisers WHERE event_id = ?1", [e.id])?;
        tx.execute("DELETE FROM event_participants WHERE event_id = ?1", [e.id])?;
        e.id
    };
    for organiser in &e.organisers {
        tx.execute(
            "INSERT OR IGNORE INTO event_organisers VALUES (?1, ?2)",
            params![id, organiser],
        )?;
    }
    for (profession, n) in &e.participants {
        tx.execute(
            "INSERT INTO event_participants VALUES (?1, ?2, ?3)
             ON CONFLICT (event_id, profession) DO UPDATE SET n = n + excluded.n",
            params![id, profession, n],
        )?;
    }
    Ok(id)
}

pub fn load_event(conn: &Connection, id: i64) -> Result<Event, OpError> {
    let mut e = conn
        .query_row(
            "SELECT id, kind, title, start_date, end_date FROM events WHERE id = ?1",
            [id],
            |r| {
                Ok(Event {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    title: r.get(2)?,
                    start_date: r.get(3)?,
                    end_date: r.get(4)?,
                    organisers: Vec::new(),
                    participants: Vec::new(),
                })
            },
        )
        .optional()?
        .ok_or(OpError::Record(RecordError::NotFound {
            kind: Kind::Event.label(),
            id,
        }))?;
    e.organisers = codes_of(
        conn,
        "SELECT organiser FROM event_organisers WHERE event_id = ?1 ORDER BY organiser",
        id,
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT profession, n FROM event_participants WHERE event_id = ?1 ORDER BY profession",
    )?;
    e.participants = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(e)
}

/// Deletes one record; its dependent rows go with it (themes, organisers) and
/// references to it from other records are cleared, as the schema says.
pub fn delete(tx: &Transaction<'_>, kind: Kind, id: i64) -> Result<(), OpError> {
    let n = tx.execute(&format!("DELETE FROM {} WHERE id = ?1", kind.table()), [id])?;
    if n == 0 {
        return Err(RecordError::NotFound {
            kind: kind.label(),
            id,
        }
        .into());
    }
    Ok(())
}

/// The ids of a kind's records, optionally restricted to one year.
pub fn list_ids(conn: &Connection, kind: Kind, year: Option<i32>) -> Result<Vec<i64>, OpError> {
    let date_column = match kind {
        Kind::Request => Some("date"),
        Kind::Loan => Some("out_date"),
        Kind::Accompaniment | Kind::Event => Some("start_date"),
        Kind::Organisation | Kind::Person => None,
    };
    let (sql, year_prefix) = match (date_column, year) {
        (Some(col), Some(y)) => (
            format!(
                "SELECT id FROM {} WHERE {col} >= ?1 AND {col} < ?2 ORDER BY id",
                kind.table()
            ),
            Some((format!("{y:04}-"), format!("{:04}-", y + 1))),
        ),
        _ => (format!("SELECT id FROM {} ORDER BY id", kind.table()), None),
    };
    let mut stmt = conn.prepare(&sql)?;
    let ids = match year_prefix {
        Some((from, to)) => stmt
            .query_map(params![from, to], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?,
        None => stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?,
    };
    Ok(ids)
}

/// Counts of each kind of record, for status lines.
pub fn counts(conn: &Connection) -> Result<Vec<(Kind, i64)>, OpError> {
    let mut out = Vec::new();
    for kind in [
        Kind::Organisation,
        Kind::Person,
        Kind::Request,
        Kind::Loan,
        Kind::Accompaniment,
        Kind::Event,
    ] {
        let n: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", kind.table()), [], |r| {
                r.get(0)
            })?;
        out.push((kind, n));
    }
    Ok(out)
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Store;

    fn request() -> Request {
        Request {
            date: "2021-03-15".into(),
            service_type: "pret".into(),
            sector: "enseignement".into(),
            profession: "enseignant_directeur".into(),
            contact_mode: "mail".into(),
            themes: vec!["evras".into(), "tic".into()],
            ..Request::default()
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut q = request();
        q.sector = "astronautique".into();
        let err = q.validate().unwrap_err().to_string();
        assert!(
            err.contains("astronautique") && err.contains("secteur"),
            "{err}"
        );
        let mut q = request();
        q.date = "2021-02-30".into();
        assert_eq!(q.validate(), Err(RecordError::BadDate("2021-02-30".into())));
        let mut q = request();
        q.themes.clear();
        assert_eq!(q.validate(), Err(RecordError::Missing("theme")));
    }

    #[tokio::test]
    async fn request_round_trips_and_bad_references_write_nothing() {
        let store = Store::in_memory().unwrap();
        let q = request();
        let (id, loaded, n_after_bad) = store
            .call(move |c| {
                let tx = c.transaction()?;
                let id = save_request(&tx, &q).map_err(crate::store::StoreError::from)?;
                tx.commit()?;
                let loaded = load_request(c, id).map_err(crate::store::StoreError::from)?;
                let mut bad = q.clone();
                bad.person_id = Some(999);
                let tx = c.transaction()?;
                let err = save_request(&tx, &bad).unwrap_err();
                assert!(err.to_string().contains("999"));
                drop(tx);
                let n: i64 = c.query_row("SELECT count(*) FROM requests", [], |r| r.get(0))?;
                Ok((id, loaded, n))
            })
            .await
            .unwrap();
        assert_eq!(loaded.id, id);
        assert_eq!(loaded.themes, vec!["evras".to_string(), "tic".to_string()]);
        assert_eq!(n_after_bad, 1);
    }
}
