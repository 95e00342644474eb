//! Circulation: the centre's copies (exemplaires) of catalogue records,
//! loans of those copies, returns, renewals, the overdue list and
//! reservations.
//!
//! Copies, loans, borrowers and reservations stay in SQLite. What the
//! network sees is the centre's holding in the shared catalogue: how many
//! copies it has and whether one is free (« disponible » / « en prêt »),
//! rewritten in the same transaction as the loan or return that changes it,
//! and never naming a borrower.

use clps_model::docs::catalogue::{Availability, Holding, RecordId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::local::{Created, FieldError, LocalError, Problem};
use super::{ErrorKind, Node};
use crate::records::{self, Kind, Loan};
use crate::store::StoreError;

/// States of a copy, with their French labels.
pub const STATES: [(&str, &str); 5] = [
    ("neuf", "Neuf"),
    ("bon", "Bon état"),
    ("use", "Usé"),
    ("abime", "Abîmé"),
    ("perdu", "Perdu"),
];

/// Days a copy stays out by default, by document type.
pub fn loan_days(doc_type: &str) -> i64 {
    match doc_type {
        "outil_pedagogique" | "exposition" => 28,
        "dvd" => 14,
        _ => 21,
    }
}

/// Longest a renewal may reach, counted from the first day out.
pub const MAX_RENEWALS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CirculationError {
    #[error("no copy with barcode {0}")]
    UnknownBarcode(String),
    #[error("copy {barcode} is already out until {due}")]
    AlreadyOut { barcode: String, due: String },
    #[error("copy {0} is not out")]
    NotOut(String),
    #[error("copy {0} is lost")]
    Lost(String),
    #[error("record {record} is reserved for {who}")]
    Reserved { record: String, who: String },
    #[error("barcode {0} is taken")]
    BarcodeTaken(String),
    #[error("loan {0} was renewed {MAX_RENEWALS} times")]
    TooManyRenewals(i64),
    #[error("no record {0}")]
    NoRecord(String),
    #[error("no open reservation {0}")]
    NoReservation(i64),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CirculationError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CirculationError::UnknownBarcode(_)
            | CirculationError::NoRecord(_)
            | CirculationError::NoReservation(_) => ErrorKind::NotFound,
            CirculationError::AlreadyOut { .. }
            | CirculationError::NotOut(_)
            | CirculationError::Lost(_)
            | CirculationError::Reserved { .. }
            | CirculationError::BarcodeTaken(_)
            | CirculationError::TooManyRenewals(_) => ErrorKind::Conflict,
            CirculationError::Local(e) => e.kind(),
            CirculationError::Store(e) => e.kind(),
        }
    }
}

/// A copy, with its loan when it is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRow {
    pub id: i64,
    pub record_id: String,
    pub title: String,
    pub barcode: String,
    pub shelf_mark: String,
    pub state: String,
    pub note: String,
    pub out: Option<OpenLoan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLoan {
    pub loan_id: i64,
    pub borrower: String,
    pub due_date: String,
}

/// A loan as the desk and the overdue list show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanRow {
    pub id: i64,
    pub barcode: String,
    pub record_id: String,
    pub title: String,
    pub organisation_id: Option<i64>,
    pub borrower: String,
    pub person: Option<String>,
    pub out_date: String,
    pub due_date: String,
    pub renewals: i64,
    pub returned_date: Option<String>,
}

/// A waiting reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    pub id: i64,
    pub record_id: String,
    pub title: String,
    pub borrower: String,
    pub person: Option<String>,
    pub created_at: i64,
}

/// What a return tells the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub loan: LoanRow,
    /// Who waits for this record, first in the queue.
    pub next: Option<ReservationRow>,
}

/// The lending form, as typed at the desk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LendForm {
    pub barcode: String,
    /// The borrowing organisation's name (a new name creates it).
    pub borrower: String,
    /// « Prénom Nom » of who came, optional.
    pub person: String,
    /// When it went out, as typed; empty for today (a loan noted on paper
    /// is entered later with its real day).
    pub out_date: String,
    /// As typed; empty for the document type's default period.
    pub due_date: String,
    pub note: String,
}

fn add_days(iso: &str, days: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(iso, &format)
        .ok()
        .and_then(|d| d.checked_add(time::Duration::days(days)))
        .and_then(|d| d.format(&format).ok())
        .unwrap_or_else(|| iso.to_owned())
}

const LOAN_ROW: &str = "SELECT l.id, coalesce(c.barcode, l.item_ref), coalesce(c.record_id, ''),
        coalesce(k.title, l.item_ref), l.organisation_id, coalesce(o.name, ''),
        p.first_name || ' ' || p.last_name, l.out_date, l.due_date, l.renewals, l.returned_date
     FROM loans l
     LEFT JOIN copies c ON c.id = l.copy_id
     LEFT JOIN catalogue k ON k.record_id = c.record_id
     LEFT JOIN organisations o ON o.id = l.organisation_id
     LEFT JOIN persons p ON p.id = l.person_id";

fn loan_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoanRow> {
    Ok(LoanRow {
        id: r.get(0)?,
        barcode: r.get(1)?,
        record_id: r.get(2)?,
        title: r.get(3)?,
        organisation_id: r.get(4)?,
        borrower: r.get(5)?,
        person: r.get(6)?,
        out_date: r.get(7)?,
        due_date: r.get(8)?,
        renewals: r.get(9)?,
        returned_date: r.get(10)?,
    })
}

fn load_loan(conn: &Connection, id: i64) -> Result<LoanRow, StoreError> {
    conn.query_row(&format!("{LOAN_ROW} WHERE l.id = ?1"), [id], loan_row)
        .optional()?
        .ok_or(StoreError::Record(records::RecordError::NotFound {
            kind: Kind::Loan.label(),
            id,
        }))
}

const RESERVATION_ROW: &str =
    "SELECT v.id, v.record_id, coalesce(k.title, v.record_id), coalesce(o.name, ''),
        p.first_name || ' ' || p.last_name, v.created_at
     FROM reservations v
     LEFT JOIN catalogue k ON k.record_id = v.record_id
     LEFT JOIN organisations o ON o.id = v.organisation_id
     LEFT JOIN persons p ON p.id = v.person_id";

fn reservation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReservationRow> {
    Ok(ReservationRow {
        id: r.get(0)?,
        record_id: r.get(1)?,
        title: r.get(2)?,
        borrower: r.get(3)?,
        person: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn first_reservation(
    conn: &Connection,
    record_id: &str,
) -> Result<Option<(ReservationRow, Option<i64>)>, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "{RESERVATION_ROW} WHERE v.record_id = ?1 AND v.closed_at IS NULL
                 ORDER BY v.created_at, v.id LIMIT 1"
            ),
            [record_id],
            reservation_row,
        )
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let org: Option<i64> = conn.query_row(
        "SELECT organisation_id FROM reservations WHERE id = ?1",
        [row.id],
        |r| r.get(0),
    )?;
    Ok(Some((row, org)))
}

/// The centre's holding of a record as its copies and open loans make it.
fn holding_of(conn: &Connection, record_id: &str) -> Result<Holding, StoreError> {
    let (copies, out, shelf): (i64, i64, Option<String>) = conn.query_row(
        "SELECT count(*),
                (SELECT count(*) FROM loans l JOIN copies c2 ON c2.id = l.copy_id
                  WHERE c2.record_id = ?1 AND l.returned_date IS NULL),
                (SELECT shelf_mark FROM copies c3 WHERE c3.record_id = ?1 AND shelf_mark != '' ORDER BY id LIMIT 1)
         FROM copies c WHERE c.record_id = ?1 AND c.state != 'perdu'",
        [record_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let centre = crate::shared::centre(conn)?;
    let current: Option<String> = conn
        .query_row(
            "SELECT shelf_mark FROM catalogue_holdings WHERE record_id = ?1 AND centre = ?2",
            params![record_id, centre.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Holding {
        copies: u32::try_from(copies).unwrap_or(0),
        shelf_mark: shelf.or(current).unwrap_or_default(),
        availability: if copies > out {
            Availability::Available
        } else {
            Availability::OnLoan
        },
    })
}

/// Runs `write` and rewrites the centre's holding of `record` to match, in
/// one transaction: the loan and what the network sees of it never part.
/// When `write` refuses (`Ok(Err(_))`), nothing it did is kept.
fn with_holding<T, E>(
    conn: &mut Connection,
    record: &RecordId,
    write: impl FnOnce(&Transaction<'_>) -> Result<Result<T, E>, StoreError>,
) -> Result<Result<T, E>, StoreError> {
    let tx = conn.transaction()?;
    let out = match write(&tx)? {
        Ok(out) => out,
        // Dropping the transaction rolls back what `write` did.
        Err(refused) => return Ok(Err(refused)),
    };
    let holding = holding_of(&tx, record.as_str())?;
    let actor = crate::shared::node_actor(&tx)?;
    let bucket = clps_model::docs::catalogue::bucket_of(record);
    let doc_id = clps_model::docs::DocId::catalogue(bucket);
    let doc = crate::shared::load_or_create(&tx, &doc_id, &actor)?;
    let mut doc = clps_model::docs::CatalogueDoc::from_automerge(bucket, doc, actor)?;
    doc.set_commit_time(crate::shared::now());
    let before = doc.automerge_mut().get_heads();
    doc.set_holding(record, &holding)?;
    let mut am = doc.into_automerge();
    crate::shared::store(&tx, &doc_id, &mut am, &before, true)?;
    tx.commit()?;
    Ok(Ok(out))
}

fn copy_id_of(
    conn: &Connection,
    barcode: &str,
) -> Result<Option<(i64, String, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, record_id, state FROM copies WHERE barcode = ?1",
            [barcode],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

fn record_of(conn: &Connection, id: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT doc_type, (SELECT theme FROM catalogue_themes t WHERE t.record_id = c.record_id ORDER BY theme LIMIT 1)
             FROM catalogue c WHERE record_id = ?1 AND merged_into IS NULL",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

impl Node {
    /// Adds a copy of a record to the centre's shelves.
    pub async fn add_copy(
        &self,
        record: &str,
        barcode: &str,
        shelf_mark: &str,
        state: &str,
        by: Option<&str>,
    ) -> Result<i64, CirculationError> {
        let record =
            RecordId::parse(record).map_err(|_| CirculationError::NoRecord(record.to_owned()))?;
        let barcode = barcode.trim().to_owned();
        let mut errors = Vec::new();
        if barcode.is_empty() {
            errors.push(FieldError {
                field: super::local::Field::Barcode,
                problem: Problem::Required,
            });
        } else if barcode.chars().count() > 64 {
            errors.push(FieldError {
                field: super::local::Field::Barcode,
                problem: Problem::TooLong { max: 64 },
            });
        }
        let state = if state.trim().is_empty() {
            "bon"
        } else {
            state.trim()
        }
        .to_owned();
        if !STATES.iter().any(|(c, _)| *c == state) {
            errors.push(FieldError {
                field: super::local::Field::State,
                problem: Problem::UnknownCode(state.clone()),
            });
        }
        if !errors.is_empty() {
            return Err(LocalError::Invalid(errors).into());
        }
        let shelf_mark = shelf_mark.trim().to_owned();
        let now = self.now();
        let journal = self.journal_entry(by, "exemplaire ajouté", &barcode);
        let rid = record.clone();
        self.store()
            .call(move |c| {
                if record_of(c, rid.as_str())?.is_none() {
                    return Ok(Err(CirculationError::NoRecord(rid.to_string())));
                }
                if copy_id_of(c, &barcode)?.is_some() {
                    return Ok(Err(CirculationError::BarcodeTaken(barcode)));
                }
                with_holding(c, &rid, |tx| {
                    tx.execute(
                        "INSERT INTO copies (record_id, barcode, shelf_mark, state, added_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![rid.as_str(), barcode, shelf_mark, state, now],
                    )?;
                    let id = tx.last_insert_rowid();
                    journal.write(tx)?;
                    Ok(Ok(id))
                })
            })
            .await?
            .inspect(|_| self.forget_facets())
    }

    /// The centre's copies of a record, each with its loan if out.
    pub async fn copies(&self, record: &str) -> Result<Vec<CopyRow>, CirculationError> {
        let record = record.to_owned();
        Ok(self
            .store()
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT c.id, c.record_id, coalesce(k.title, c.record_id), c.barcode, c.shelf_mark, c.state, c.note,
                            l.id, coalesce(o.name, ''), l.due_date
                     FROM copies c
                     LEFT JOIN catalogue k ON k.record_id = c.record_id
                     LEFT JOIN loans l ON l.copy_id = c.id AND l.returned_date IS NULL
                     LEFT JOIN organisations o ON o.id = l.organisation_id
                     WHERE c.record_id = ?1 ORDER BY c.barcode",
                )?;
                let rows = stmt
                    .query_map([record], |r| {
                        let loan: Option<i64> = r.get(7)?;
                        Ok(CopyRow {
                            id: r.get(0)?,
                            record_id: r.get(1)?,
                            title: r.get(2)?,
                            barcode: r.get(3)?,
                            shelf_mark: r.get(4)?,
                            state: r.get(5)?,
                            note: r.get(6)?,
                            out: match loan {
                                Some(loan_id) => Some(OpenLoan {
                                    loan_id,
                                    borrower: r.get(8)?,
                                    due_date: r.get(9)?,
                                }),
                                None => None,
                            },
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    /// Lends a copy, found by its barcode, to a borrowing organisation.
    /// Refused when the copy is out, lost, or reserved for someone else.
    pub async fn lend(
        &self,
        form: &LendForm,
        today: &str,
        by: Option<&str>,
    ) -> Result<(LoanRow, Created), CirculationError> {
        let mut errors = Vec::new();
        let barcode = form.barcode.trim().to_owned();
        if barcode.is_empty() {
            errors.push(FieldError {
                field: super::local::Field::Barcode,
                problem: Problem::Required,
            });
        }
        let borrower = form.borrower.trim().to_owned();
        if borrower.is_empty() {
            errors.push(FieldError {
                field: super::local::Field::Organisation,
                problem: Problem::Required,
            });
        }
        let out = match form.out_date.trim() {
            "" => today.to_owned(),
            d => match super::local::parse_date(d) {
                Some(iso) if iso.as_str() <= today => iso,
                Some(iso) => {
                    errors.push(FieldError {
                        field: super::local::Field::Date,
                        problem: Problem::InFuture(iso),
                    });
                    today.to_owned()
                }
                None => {
                    errors.push(FieldError {
                        field: super::local::Field::Date,
                        problem: Problem::BadDate(d.to_owned()),
                    });
                    today.to_owned()
                }
            },
        };
        let due = match form.due_date.trim() {
            "" => None,
            d => match super::local::parse_date(d) {
                Some(iso) if iso >= out => Some(iso),
                Some(_) => {
                    errors.push(FieldError {
                        field: super::local::Field::DueDate,
                        problem: Problem::DateOrder,
                    });
                    None
                }
                None => {
                    errors.push(FieldError {
                        field: super::local::Field::DueDate,
                        problem: Problem::BadDate(d.to_owned()),
                    });
                    None
                }
            },
        };
        if form.note.chars().count() > super::local::MAX_TEXT {
            errors.push(FieldError {
                field: super::local::Field::Note,
                problem: Problem::TooLong {
                    max: super::local::MAX_TEXT,
                },
            });
        }
        if !errors.is_empty() {
            return Err(LocalError::Invalid(errors).into());
        }
        let person = form.person.trim().to_owned();
        let note = form.note.trim().to_owned();
        let now = self.now();
        let journal = self.journal_entry(by, "prêt", &barcode);
        self.store()
            .call(move |c| {
                let Some((copy_id, record_id, state)) = copy_id_of(c, &barcode)? else {
                    return Ok(Err(CirculationError::UnknownBarcode(barcode)));
                };
                if state == "perdu" {
                    return Ok(Err(CirculationError::Lost(barcode)));
                }
                let open: Option<String> = c
                    .query_row(
                        "SELECT due_date FROM loans WHERE copy_id = ?1 AND returned_date IS NULL",
                        [copy_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(due) = open {
                    return Ok(Err(CirculationError::AlreadyOut { barcode, due }));
                }
                let Some((doc_type, theme)) = record_of(c, &record_id)? else {
                    return Ok(Err(CirculationError::NoRecord(record_id)));
                };
                let Ok(rid) = RecordId::parse(&record_id) else {
                    return Ok(Err(CirculationError::NoRecord(record_id)));
                };
                let reserved = first_reservation(c, &record_id)?;
                let due = due.unwrap_or_else(|| add_days(&out, loan_days(&doc_type)));
                let outcome = with_holding(c, &rid, |tx| {
                    let mut created = Created::default();
                    let org = match super::local::resolve_organisation(
                        tx,
                        &borrower,
                        "autre",
                        &mut created,
                    )? {
                        Ok(o) => o,
                        Err(e) => return Ok(Err(LocalError::Invalid(vec![e]).into())),
                    };
                    let person_id =
                        match super::local::resolve_person(tx, &person, org, &mut created)? {
                            Ok(p) => p,
                            Err(e) => return Ok(Err(LocalError::Invalid(vec![e]).into())),
                        };
                    // A reservation by someone else holds the copy for them.
                    if let Some((first, first_org)) = &reserved {
                        if *first_org != org {
                            return Ok(Err(CirculationError::Reserved {
                                record: first.title.clone(),
                                who: first.borrower.clone(),
                            }));
                        }
                        tx.execute(
                            "UPDATE reservations SET closed_at = ?2 WHERE id = ?1",
                            params![first.id, now],
                        )?;
                    }
                    let loan = Loan {
                        id: 0,
                        item_ref: barcode.clone(),
                        document_type: doc_type.clone(),
                        theme: theme.clone(),
                        organisation_id: org,
                        out_date: out.clone(),
                        due_date: due.clone(),
                        returned_date: None,
                    };
                    let id = records::save_loan(tx, &loan)?;
                    tx.execute(
                        "UPDATE loans SET copy_id = ?2, person_id = ?3, note = ?4 WHERE id = ?1",
                        params![id, copy_id, person_id, note],
                    )?;
                    journal
                        .with_target(format!("prêt n° {id} ({barcode})"))
                        .write(tx)?;
                    Ok(Ok((id, created)))
                })?;
                match outcome {
                    Ok((id, created)) => Ok(Ok((load_loan(c, id)?, created))),
                    Err(e) => Ok(Err(e)),
                }
            })
            .await?
    }

    /// Takes a copy back, found by its barcode; says who waits for it.
    pub async fn return_copy(
        &self,
        barcode: &str,
        today: &str,
        by: Option<&str>,
    ) -> Result<Returned, CirculationError> {
        let barcode = barcode.trim().to_owned();
        let today = today.to_owned();
        let journal = self.journal_entry(by, "retour", &barcode);
        self.store()
            .call(move |c| {
                let Some((copy_id, record_id, _)) = copy_id_of(c, &barcode)? else {
                    return Ok(Err(CirculationError::UnknownBarcode(barcode)));
                };
                let open: Option<(i64, String)> = c
                    .query_row(
                        "SELECT id, out_date FROM loans WHERE copy_id = ?1 AND returned_date IS NULL",
                        [copy_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((loan_id, out_date)) = open else {
                    return Ok(Err(CirculationError::NotOut(barcode)));
                };
                let Ok(rid) = RecordId::parse(&record_id) else {
                    return Ok(Err(CirculationError::NoRecord(record_id)));
                };
                // A return recorded on the day of the loan or later.
                let back = if today < out_date { out_date } else { today };
                let written = with_holding(c, &rid, |tx| {
                    tx.execute(
                        "UPDATE loans SET returned_date = ?2 WHERE id = ?1",
                        params![loan_id, back],
                    )?;
                    journal.write(tx)?;
                    Ok(Ok::<(), CirculationError>(()))
                })?;
                if let Err(e) = written {
                    return Ok(Err(e));
                }
                let next = first_reservation(c, &record_id)?.map(|(r, _)| r);
                Ok(Ok(Returned {
                    loan: load_loan(c, loan_id)?,
                    next,
                }))
            })
            .await?
    }

    /// Extends an open loan by the document type's period, from its due date.
    pub async fn renew(&self, loan_id: i64, by: Option<&str>) -> Result<LoanRow, CirculationError> {
        let journal = self.journal_entry(by, "prolongation", &format!("prêt n° {loan_id}"));
        self.store()
            .call(move |c| {
                let loan = load_loan(c, loan_id)?;
                if loan.returned_date.is_some() {
                    return Ok(Err(CirculationError::NotOut(loan.barcode)));
                }
                if loan.renewals >= MAX_RENEWALS {
                    return Ok(Err(CirculationError::TooManyRenewals(loan_id)));
                }
                if let Some((first, first_org)) = first_reservation(c, &loan.record_id)?
                    && first_org != loan.organisation_id
                {
                    return Ok(Err(CirculationError::Reserved {
                        record: first.title,
                        who: first.borrower,
                    }));
                }
                let doc_type: String = c.query_row(
                    "SELECT document_type FROM loans WHERE id = ?1",
                    [loan_id],
                    |r| r.get(0),
                )?;
                let due = add_days(&loan.due_date, loan_days(&doc_type));
                let tx = c.transaction()?;
                tx.execute(
                    "UPDATE loans SET due_date = ?2, renewals = renewals + 1 WHERE id = ?1",
                    params![loan_id, due],
                )?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok(load_loan(c, loan_id)?))
            })
            .await?
    }

    /// Open loans whose due date is before `today`, longest late first.
    pub async fn overdue(&self, today: &str) -> Result<Vec<LoanRow>, CirculationError> {
        let today = today.to_owned();
        Ok(self
            .store()
            .call(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{LOAN_ROW} WHERE l.returned_date IS NULL AND l.due_date < ?1 AND l.copy_id IS NOT NULL
                     ORDER BY l.due_date, o.name"
                ))?;
                let rows = stmt
                    .query_map([today], loan_row)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    /// Copies out now, soonest due first.
    pub async fn open_loans(&self) -> Result<Vec<LoanRow>, CirculationError> {
        Ok(self
            .store()
            .call(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{LOAN_ROW} WHERE l.returned_date IS NULL AND l.copy_id IS NOT NULL ORDER BY l.due_date, l.id"
                ))?;
                let rows = stmt
                    .query_map([], loan_row)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    /// Puts a borrower in a record's queue.
    pub async fn reserve(
        &self,
        record: &str,
        borrower: &str,
        person: &str,
        by: Option<&str>,
    ) -> Result<(i64, Created), CirculationError> {
        let record = record.to_owned();
        let borrower = borrower.trim().to_owned();
        if borrower.is_empty() {
            return Err(LocalError::Invalid(vec![FieldError {
                field: super::local::Field::Organisation,
                problem: Problem::Required,
            }])
            .into());
        }
        let person = person.trim().to_owned();
        let now = self.now();
        let journal = self.journal_entry(by, "réservation", &record);
        self.store()
            .call(move |c| {
                if record_of(c, &record)?.is_none() {
                    return Ok(Err(CirculationError::NoRecord(record)));
                }
                let tx = c.transaction()?;
                let mut created = Created::default();
                let org = match super::local::resolve_organisation(
                    &tx,
                    &borrower,
                    "autre",
                    &mut created,
                )? {
                    Ok(o) => o,
                    Err(e) => return Ok(Err(LocalError::Invalid(vec![e]).into())),
                };
                let person_id = match super::local::resolve_person(&tx, &person, org, &mut created)?
                {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(LocalError::Invalid(vec![e]).into())),
                };
                tx.execute(
                    "INSERT INTO reservations (record_id, organisation_id, person_id, created_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![record, org, person_id, now],
                )?;
                let id = tx.last_insert_rowid();
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok((id, created)))
            })
            .await?
    }

    /// The waiting queue of a record, first come first.
    pub async fn reservations(
        &self,
        record: &str,
    ) -> Result<Vec<ReservationRow>, CirculationError> {
        let record = record.to_owned();
        Ok(self
            .store()
            .call(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{RESERVATION_ROW} WHERE v.record_id = ?1 AND v.closed_at IS NULL ORDER BY v.created_at, v.id"
                ))?;
                let rows = stmt
                    .query_map([record], reservation_row)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .await?)
    }

    /// Cancels a reservation.
    pub async fn cancel_reservation(
        &self,
        id: i64,
        by: Option<&str>,
    ) -> Result<(), CirculationError> {
        let now = self.now();
        let journal =
            self.journal_entry(by, "réservation annulée", &format!("réservation n° {id}"));
        self.store()
            .call(move |c| {
                let tx = c.transaction()?;
                let n = tx.execute(
                    "UPDATE reservations SET closed_at = ?2 WHERE id = ?1 AND closed_at IS NULL",
                    params![id, now],
                )?;
                if n == 0 {
                    return Ok(Err(CirculationError::NoReservation(id)));
                }
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok(()))
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::app::catalogue::{HoldingForm, RecordForm};
    use clps_model::CentreId;

    async fn node_with_record() -> (Node, String) {
        let node = Node::in_memory(&CentreId::new("namur").unwrap(), 1_700_000_000, 5)
            .await
            .unwrap();
        let form = RecordForm {
            title: "Jeu des émotions".into(),
            doc_type: "outil_pedagogique".into(),
            themes: vec!["competences_psychosociales".into()],
            ..RecordForm::default()
        };
        let _ = HoldingForm::default();
        let id = node.add_record(&form, None, None).await.unwrap();
        (node, id.to_string())
    }

    fn lend(barcode: &str, borrower: &str) -> LendForm {
        LendForm {
            barcode: barcode.into(),
            borrower: borrower.into(),
            person: "Zoé Canari".into(),
            ..LendForm::default()
        }
    }

    async fn holding(node: &Node, id: &str) -> (i64, String) {
        let id = id.to_owned();
        node.store()
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT copies, availability FROM catalogue_holdings WHERE record_id = ?1 AND centre = 'namur'",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_copy_goes_out_and_comes_back_and_the_holding_follows() {
        let (node, id) = node_with_record().await;
        node.add_copy(&id, "NA-0001", "J-EMO", "", None)
            .await
            .unwrap();
        assert_eq!(holding(&node, &id).await, (1, "available".to_owned()));
        assert!(matches!(
            node.add_copy(&id, "NA-0001", "", "", None).await,
            Err(CirculationError::BarcodeTaken(_))
        ));
        let (loan, created) = node
            .lend(&lend("NA-0001", "École des Canaris"), "2026-03-02", None)
            .await
            .unwrap();
        assert_eq!(loan.due_date, "2026-03-30", "28 days for a teaching tool");
        assert_eq!(created.organisation.as_deref(), Some("École des Canaris"));
        assert_eq!(holding(&node, &id).await, (1, "on_loan".to_owned()));
        // Out already: refused, nothing written.
        let err = node
            .lend(&lend("NA-0001", "Athénée"), "2026-03-03", None)
            .await
            .unwrap_err();
        assert!(matches!(err, CirculationError::AlreadyOut { ref due, .. } if due == "2026-03-30"));
        assert_eq!(node.organisations("Athénée", 10).await.unwrap().len(), 0);
        assert!(node.overdue("2026-03-30").await.unwrap().is_empty());
        assert_eq!(node.overdue("2026-03-31").await.unwrap()[0].id, loan.id);
        let renewed = node.renew(loan.id, None).await.unwrap();
        assert_eq!(renewed.due_date, "2026-04-27");
        let back = node
            .return_copy("NA-0001", "2026-04-02", None)
            .await
            .unwrap();
        assert_eq!(back.loan.returned_date.as_deref(), Some("2026-04-02"));
        assert_eq!(back.next, None);
        assert_eq!(holding(&node, &id).await, (1, "available".to_owned()));
        assert!(matches!(
            node.return_copy("NA-0001", "2026-04-02", None).await,
            Err(CirculationError::NotOut(_))
        ));
        assert!(matches!(
            node.lend(&lend("XX-404", "École des Canaris"), "2026-04-02", None)
                .await,
            Err(CirculationError::UnknownBarcode(_))
        ));
        // The loan counts in the year's figures like any loan.
        let report = node.report(2026).await.unwrap();
        assert_eq!(report.tally("prets-type").unwrap().total, 1);
    }

    #[tokio::test]
    async fn a_reservation_holds_the_next_copy_for_whoever_asked_first() {
        let (node, id) = node_with_record().await;
        node.add_copy(&id, "NA-0002", "", "", None).await.unwrap();
        node.lend(&lend("NA-0002", "École des Canaris"), "2026-03-02", None)
            .await
            .unwrap();
        node.reserve(&id, "CPAS de Namur", "", None).await.unwrap();
        let back = node
            .return_copy("NA-0002", "2026-03-10", None)
            .await
            .unwrap();
        assert_eq!(back.next.unwrap().borrower, "CPAS de Namur");
        let err = node
            .lend(&lend("NA-0002", "École des Canaris"), "2026-03-10", None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CirculationError::Reserved { ref who, .. } if who == "CPAS de Namur")
        );
        node.lend(&lend("NA-0002", "CPAS de Namur"), "2026-03-10", None)
            .await
            .unwrap();
        assert!(node.reservations(&id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn no_borrower_reaches_a_shared_document() {
        let (node, id) = node_with_record().await;
        node.add_copy(&id, "NA-0003", "", "", None).await.unwrap();
        node.lend(
            &LendForm {
                note: "Canari-note-secrète".into(),
                ..lend("NA-0003", "Crèche Canari-Privé")
            },
            "2026-03-02",
            None,
        )
        .await
        .unwrap();
        node.return_copy("NA-0003", "2026-03-05", None)
            .await
            .unwrap();
        // Every shared document, current state and whole history.
        let texts: Vec<String> = node
            .store()
            .call(|c| {
                let mut stmt = c.prepare("SELECT doc_id, snapshot FROM shared_docs")?;
                let docs: Vec<(String, Vec<u8>)> = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut out = Vec::new();
                for (doc_id, snapshot) in docs {
                    let mut doc = automerge::AutoCommit::load(&snapshot).unwrap();
                    let mut chunks = c.prepare(
                        "SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq",
                    )?;
                    let chunks: Vec<Vec<u8>> = chunks
                        .query_map([&doc_id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for chunk in chunks {
                        doc.load_incremental(&chunk).unwrap();
                    }
                    out.push(serde_json::to_string(&automerge::AutoSerde::from(&doc)).unwrap());
                    out.push(String::from_utf8_lossy(&doc.save_nocompress()).into_owned());
                }
                Ok(out)
            })
            .await
            .unwrap();
        assert!(
            texts.iter().any(|t| t.contains("Jeu des émotions")),
            "the scan reads text"
        );
        for canary in ["Canari-Privé", "Zoé", "Canari-note", "NA-0003"] {
            for t in &texts {
                assert!(!t.contains(canary), "{canary} in a shared document");
            }
        }
    }
}
