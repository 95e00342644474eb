//! The outilthèque's operations: search, a record with everything around
//! it, add and edit from a form, this centre's holding and review,
//! conflicts, duplicates and merge.
//!
//! Forms arrive as text ([`RecordForm`]); [`RecordForm::parse`] checks every
//! field against the rules the shared document obeys (the model's limits
//! and code lists) and reports each problem with its field, so an adapter
//! can show it next to the input. Nothing is written when any field fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use clps_model::CentreId;
use clps_model::docs::DocError;
use clps_model::docs::catalogue::{
    self as model, Availability, Holding, Record, RecordEdit, RecordFields, RecordId, Review,
    ReviewerRole, rules,
};
use clps_model::vocab;
use serde::{Deserialize, Serialize};

use super::{ErrorKind, Node};
use crate::catalogue::{self as projection, SearchQuery};
use crate::import;
use crate::store::StoreError;

/// A field of the record, holding and review forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Title,
    DocType,
    Creator,
    Publisher,
    Year,
    Themes,
    Publics,
    AgeMin,
    AgeMax,
    Description,
    Conditions,
    Languages,
    Links,
    Copies,
    ShelfMark,
    Availability,
    Role,
    Rating,
    ReviewText,
}

/// What is wrong with a field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Required,
    TooLong {
        max: usize,
    },
    NotANumber(String),
    OutOfRange {
        min: i64,
        max: i64,
    },
    UnknownCode(String),
    /// An e-mail address or a phone number: never in a shared document.
    PersonalData,
    NotALink(String),
    NotASlug(String),
    /// The minimum age is above the maximum.
    AgeOrder,
    TooMany {
        max: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("no record {0}")]
    NotFound(String),
    #[error("the form has {} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// The description was changed elsewhere since the form was opened.
    #[error("record {0} changed since the form was opened")]
    Changed(String),
    #[error("nothing to change")]
    NoChange,
    #[error("records {0} and {1} cannot be merged")]
    CannotMerge(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CatalogueError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogueError::NotFound(_) => ErrorKind::NotFound,
            CatalogueError::Invalid(_) | CatalogueError::NoChange => ErrorKind::Invalid,
            CatalogueError::Changed(_) | CatalogueError::CannotMerge(..) => ErrorKind::Conflict,
            CatalogueError::Store(e) => e.kind(),
        }
    }
}

/// Maps the model's refusal of a write to the form field it concerns.
fn from_store(e: StoreError) -> CatalogueError {
    let field_of = |name: &str| match name {
        "title" => Some(Field::Title),
        "creator" => Some(Field::Creator),
        "publisher" => Some(Field::Publisher),
        "description" => Some(Field::Description),
        "conditions_of_use" => Some(Field::Conditions),
        "shelf_mark" => Some(Field::ShelfMark),
        "text" | "review" => Some(Field::ReviewText),
        _ => None,
    };
    match &e {
        StoreError::Doc(DocError::PersonalData { field }) => match field_of(field) {
            Some(field) => CatalogueError::Invalid(vec![FieldError {
                field,
                problem: Problem::PersonalData,
            }]),
            None => CatalogueError::Store(e),
        },
        StoreError::Doc(DocError::UnknownRecord(id)) => CatalogueError::NotFound(id.clone()),
        _ => CatalogueError::Store(e),
    }
}

/// The record form as typed: every value is text until [`RecordForm::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordForm {
    pub title: String,
    pub doc_type: String,
    pub creator: String,
    pub publisher: String,
    pub year: String,
    pub themes: Vec<String>,
    /// Comma-separated.
    pub publics: String,
    pub age_min: String,
    pub age_max: String,
    pub description: String,
    pub conditions: String,
    /// Comma-separated ISO 639-1 codes.
    pub languages: String,
    /// One per line.
    pub links: String,
}

fn join(set: &BTreeSet<String>, sep: &str) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(sep)
}

impl RecordForm {
    /// The form filled with a record's values.
    pub fn from_fields(f: &RecordFields) -> RecordForm {
        RecordForm {
            title: f.title.clone(),
            doc_type: f.doc_type.clone(),
            creator: f.creator.clone(),
            publisher: f.publisher.clone(),
            year: f.year.map(|y| y.to_string()).unwrap_or_default(),
            themes: f.themes.iter().cloned().collect(),
            publics: join(&f.publics, ", "),
            age_min: f.age_min.map(|a| a.to_string()).unwrap_or_default(),
            age_max: f.age_max.map(|a| a.to_string()).unwrap_or_default(),
            description: f.description.clone(),
            conditions: f.conditions_of_use.clone(),
            languages: join(&f.languages, ", "),
            links: join(&f.links, "\n"),
        }
    }

    /// Checks every field; all problems at once, or the record's fields.
    pub fn parse(&self) -> Result<RecordFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field, problem| errors.push(FieldError { field, problem });
        let v = vocab::get();
        let text = |fail: &mut dyn FnMut(Field, Problem), field, value: &str, max| {
            let value = value.trim();
            if value.chars().count() > max {
                fail(field, Problem::TooLong { max });
            } else if clps_model::docs::normalize::contains_email(value)
                || clps_model::docs::normalize::contains_phone(value)
            {
                fail(field, Problem::PersonalData);
            }
            value.to_owned()
        };
        let title = text(&mut fail, Field::Title, &self.title, rules::MAX_TITLE_CHARS);
        if title.is_empty() {
            fail(Field::Title, Problem::Required);
        }
        let doc_type = self.doc_type.trim().to_owned();
        if doc_type.is_empty() {
            fail(Field::DocType, Problem::Required);
        } else if !v.document_types.contains(&doc_type) {
            fail(Field::DocType, Problem::UnknownCode(doc_type.clone()));
        }
        let creator = text(
            &mut fail,
            Field::Creator,
            &self.creator,
            rules::MAX_NAME_CHARS,
        );
        let publisher = text(
            &mut fail,
            Field::Publisher,
            &self.publisher,
            rules::MAX_NAME_CHARS,
        );
        let number = |fail: &mut dyn FnMut(Field, Problem), field, value: &str, min, max| {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                Ok(_) => {
                    fail(field, Problem::OutOfRange { min, max });
                    None
                }
                Err(_) => {
                    fail(field, Problem::NotANumber(value.to_owned()));
                    None
                }
            }
        };
        let year = number(&mut fail, Field::Year, &self.year, 1800, 2100).map(|y| y as u16);
        let age_min = number(&mut fail, Field::AgeMin, &self.age_min, 0, 120).map(|a| a as u8);
        let age_max = number(&mut fail, Field::AgeMax, &self.age_max, 0, 120).map(|a| a as u8);
        if let (Some(min), Some(max)) = (age_min, age_max)
            && min > max
        {
            fail(Field::AgeMax, Problem::AgeOrder);
        }
        let mut themes = BTreeSet::new();
        for theme in &self.themes {
            let theme = theme.trim();
            if theme.is_empty() {
                continue;
            }
            if v.themes.contains(theme) {
                themes.insert(theme.to_owned());
            } else {
                fail(Field::Themes, Problem::UnknownCode(theme.to_owned()));
            }
        }
        let slugs = |fail: &mut dyn FnMut(Field, Problem), field, value: &str| {
            let mut out = BTreeSet::new();
            for item in value.split([',', ';']) {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let slug = crate::text::slug(item);
                if slug.is_empty() || slug.len() > 64 {
                    fail(field, Problem::NotASlug(item.to_owned()));
                } else {
                    out.insert(slug);
                }
            }
            if out.len() > rules::MAX_SET_MEMBERS {
                fail(
                    field,
                    Problem::TooMany {
                        max: rules::MAX_SET_MEMBERS,
                    },
                );
            }
            out
        };
        let publics = slugs(&mut fail, Field::Publics, &self.publics);
        let languages = slugs(&mut fail, Field::Languages, &self.languages);
        let mut links = BTreeSet::new();
        for link in self.links.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let ok = (link.starts_with("https://") || link.starts_with("http://"))
                && !link.contains(char::is_whitespace)
                && link.len() <= 2000;
            if ok {
                links.insert(link.to_owned());
            } else {
                fail(Field::Links, Problem::NotALink(link.to_owned()));
            }
        }
        // The description keeps its line breaks; only its ends are trimmed.
        let description = text(
            &mut fail,
            Field::Description,
            &self.description.replace("\r\n", "\n"),
            rules::MAX_DESCRIPTION_CHARS,
        );
        let conditions_of_use = text(
            &mut fail,
            Field::Conditions,
            &self.conditions,
            rules::MAX_CONDITIONS_CHARS,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RecordFields {
            title,
            doc_type,
            creator,
            publisher,
            year,
            themes,
            publics,
            age_min,
            age_max,
            description,
            conditions_of_use,
            languages,
            links,
        })
    }
}

/// The edits that turn `base` into `new`: only the fields the person changed,
/// so that what other centres changed meanwhile in other fields stays.
pub fn edits_between(base: &RecordFields, new: &RecordFields) -> Vec<RecordEdit> {
    let mut edits = Vec::new();
    if base.title != new.title {
        edits.push(RecordEdit::Title(new.title.clone()));
    }
    if base.doc_type != new.doc_type {
        edits.push(RecordEdit::DocType(new.doc_type.clone()));
    }
    if base.creator != new.creator {
        edits.push(RecordEdit::Creator(new.creator.clone()));
    }
    if base.publisher != new.publisher {
        edits.push(RecordEdit::Publisher(new.publisher.clone()));
    }
    if base.year != new.year {
        edits.push(RecordEdit::Year(new.year));
    }
    if (base.age_min, base.age_max) != (new.age_min, new.age_max) {
        edits.push(RecordEdit::AgeRange {
            min: new.age_min,
            max: new.age_max,
        });
    }
    if base.conditions_of_use != new.conditions_of_use {
        edits.push(RecordEdit::ConditionsOfUse(new.conditions_of_use.clone()));
    }
    if base.description != new.description {
        edits.push(RecordEdit::ReplaceDescription(new.description.clone()));
    }
    type SetEdit = fn(String) -> RecordEdit;
    let sets: [(&BTreeSet<String>, &BTreeSet<String>, SetEdit, SetEdit); 4] = [
        (
            &base.themes,
            &new.themes,
            RecordEdit::AddTheme,
            RecordEdit::RemoveTheme,
        ),
        (
            &base.publics,
            &new.publics,
            RecordEdit::AddPublic,
            RecordEdit::RemovePublic,
        ),
        (
            &base.languages,
            &new.languages,
            RecordEdit::AddLanguage,
            RecordEdit::RemoveLanguage,
        ),
        (
            &base.links,
            &new.links,
            RecordEdit::AddLink,
            RecordEdit::RemoveLink,
        ),
    ];
    for (before, after, add, remove) in sets {
        edits.extend(after.difference(before).cloned().map(add));
        edits.extend(before.difference(after).cloned().map(remove));
    }
    edits
}

/// This centre's holding, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldingForm {
    pub copies: String,
    pub shelf_mark: String,
    pub availability: String,
}

impl HoldingForm {
    pub fn parse(&self) -> Result<Holding, Vec<FieldError>> {
        let mut errors = Vec::new();
        let copies = match self.copies.trim().parse::<u64>() {
            Ok(n) if n <= rules::MAX_COPIES => n as u32,
            Ok(_) => {
                errors.push(FieldError {
                    field: Field::Copies,
                    problem: Problem::OutOfRange {
                        min: 0,
                        max: rules::MAX_COPIES as i64,
                    },
                });
                0
            }
            Err(_) => {
                errors.push(FieldError {
                    field: Field::Copies,
                    problem: Problem::NotANumber(self.copies.trim().to_owned()),
                });
                0
            }
        };
        let shelf_mark = self.shelf_mark.trim().to_owned();
        if shelf_mark.chars().count() > rules::MAX_SHELF_MARK_CHARS {
            errors.push(FieldError {
                field: Field::ShelfMark,
                problem: Problem::TooLong {
                    max: rules::MAX_SHELF_MARK_CHARS,
                },
            });
        }
        let availability = Availability::from_code(self.availability.trim()).unwrap_or_else(|| {
            errors.push(FieldError {
                field: Field::Availability,
                problem: Problem::UnknownCode(self.availability.clone()),
            });
            Availability::Available
        });
        if errors.is_empty() {
            Ok(Holding {
                copies,
                shelf_mark,
                availability,
            })
        } else {
            Err(errors)
        }
    }
}

/// This centre's review, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewForm {
    pub role: String,
    pub rating: String,
    pub text: String,
}

impl ReviewForm {
    pub fn parse(&self) -> Result<(ReviewerRole, Review), Vec<FieldError>> {
        let mut errors = Vec::new();
        let role = ReviewerRole::from_code(self.role.trim());
        if role.is_none() {
            errors.push(FieldError {
                field: Field::Role,
                problem: Problem::UnknownCode(self.role.clone()),
            });
        }
        let rating = match self.rating.trim().parse::<u8>() {
            Ok(n) if (1..=5).contains(&n) => n,
            _ => {
                errors.push(FieldError {
                    field: Field::Rating,
                    problem: Problem::OutOfRange { min: 1, max: 5 },
                });
                0
            }
        };
        let text = self.text.trim().to_owned();
        if text.chars().count() > rules::MAX_REVIEW_CHARS {
            errors.push(FieldError {
                field: Field::ReviewText,
                problem: Problem::TooLong {
                    max: rules::MAX_REVIEW_CHARS,
                },
            });
        } else if clps_model::docs::normalize::contains_email(&text)
            || clps_model::docs::normalize::contains_phone(&text)
        {
            errors.push(FieldError {
                field: Field::ReviewText,
                problem: Problem::PersonalData,
            });
        }
        match role {
            Some(role) if errors.is_empty() => Ok((role, Review { rating, text })),
            _ => Err(errors),
        }
    }
}

/// What a search asks, as an adapter passes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub text: String,
    pub doc_type: Option<String>,
    pub theme: Option<String>,
    pub public: Option<String>,
    pub centre: Option<String>,
    pub available: bool,
    /// Records whose age range includes this age.
    pub age: Option<u8>,
    /// Published from this year, up to that one (both included).
    pub year_from: Option<u16>,
    pub year_to: Option<u16>,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

/// One centre's copies, as a result line shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiesAt {
    pub centre: CentreId,
    pub copies: u32,
    pub availability: Availability,
    pub shelf_mark: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitView {
    pub id: RecordId,
    pub title: String,
    pub doc_type: String,
    pub publisher: String,
    pub year: Option<i64>,
    pub copies: Vec<CopiesAt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    pub hits: Vec<HitView>,
    pub page: usize,
    pub has_more: bool,
    /// Records in the catalogue (aliases left out).
    pub total_records: i64,
}

/// Values the search filters offer beyond the code lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    /// Publics used in the catalogue, most used first.
    pub publics: Vec<(String, i64)>,
    /// Centres holding copies.
    pub centres: Vec<CentreId>,
    /// Records in the catalogue (aliases left out).
    pub records: i64,
}

/// One change of a record, as its history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: i64,
    pub centre: Option<CentreId>,
    /// `create`, `edit`, `holding`, `review`, `merge`...
    pub action: String,
}

/// A field whose value differs between centres that wrote it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictView {
    /// `title`, `year`... (only scalar fields can be settled from the page).
    pub field: String,
    pub values: Vec<String>,
}

/// A record with everything its page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub record: Record,
    pub conflicts: Vec<ConflictView>,
    pub history: Vec<HistoryEntry>,
    /// Likely duplicates: id and title.
    pub duplicates: Vec<(RecordId, String)>,
}

/// How long the facet lists of the search page are reused, in seconds: a
/// public or a centre new to the catalogue shows in them after at most this.
pub const FACETS_SECONDS: u64 = 30;

/// A staff member's login, for the local journal of who did what.
pub type By<'a> = Option<&'a str>;

/// The scalar fields whose competing values a person may settle.
pub const SETTLEABLE: [&str; 6] = [
    "title",
    "doc_type",
    "creator",
    "publisher",
    "year",
    "conditions_of_use",
];

fn parse_id(id: &str) -> Result<RecordId, CatalogueError> {
    RecordId::parse(id).map_err(|_| CatalogueError::NotFound(id.to_owned()))
}

impl Node {
    /// One page of a catalogue search.
    pub async fn search(&self, s: Search) -> Result<SearchPage, CatalogueError> {
        let per_page = s.per_page.clamp(1, 100);
        let page = s.page.max(1);
        let total_records = self.facets().await?.records;
        let q = SearchQuery {
            text: s.text,
            theme: s.theme,
            doc_type: s.doc_type,
            public: s.public,
            centre: s.centre,
            available: s.available,
            age: s.age,
            year_from: s.year_from,
            year_to: s.year_to,
            limit: page * per_page + 1,
        };
        Ok(self
            .store()
            .call(move |conn| {
                let hits = projection::search(conn, &q)?;
                let has_more = hits.len() > page * per_page;
                let mut out = Vec::new();
                for hit in hits.into_iter().skip((page - 1) * per_page).take(per_page) {
                    let Ok(id) = RecordId::parse(&hit.record_id) else {
                        continue;
                    };
                    out.push(HitView {
                        copies: projection::holdings_of(conn, &id)?
                            .into_iter()
                            .map(|(centre, h)| CopiesAt {
                                centre,
                                copies: h.copies,
                                availability: h.availability,
                                shelf_mark: h.shelf_mark,
                            })
                            .collect(),
                        id,
                        title: hit.title,
                        doc_type: hit.doc_type,
                        publisher: hit.publisher,
                        year: hit.year,
                    });
                }
                Ok(SearchPage {
                    hits: out,
                    page,
                    has_more,
                    total_records,
                })
            })
            .await?)
    }

    /// Publics and holding centres present in the catalogue.
    /// After a write that may add a public or a holding centre.
    pub(crate) fn forget_facets(&self) {
        self.facets_cache().take();
    }

    pub async fn facets(&self) -> Result<Facets, CatalogueError> {
        let fresh = |at: &std::time::Instant| at.elapsed().as_secs() < FACETS_SECONDS;
        if let Some((at, facets)) = &*self.facets_cache()
            && fresh(at)
        {
            return Ok(facets.clone());
        }
        let facets = self.store().call(projection::facets).await?;
        *self.facets_cache() = Some((std::time::Instant::now(), facets.clone()));
        Ok(facets)
    }

    /// A record and what its page shows; a merged duplicate answers with
    /// the record it was merged into.
    pub async fn record(&self, id: &str) -> Result<RecordView, CatalogueError> {
        let id = parse_id(id)?;
        let wanted = id.to_string();
        self.store()
            .call(move |conn| {
                let Some(mut record) = projection::show(conn, &id)? else {
                    return Ok(None);
                };
                if let Some(into) = record.merged_into.clone()
                    && let Some(survivor) = projection::show(conn, &into)?
                {
                    record = survivor;
                }
                let (conflicts, history) = projection::record_story(conn, &record.id)?;
                let duplicates = projection::likely_duplicates(conn, &record)?;
                Ok(Some(RecordView {
                    record,
                    conflicts: conflicts
                        .into_iter()
                        .map(|c| ConflictView {
                            field: c.field,
                            values: c.values,
                        })
                        .collect(),
                    history: history
                        .into_iter()
                        .map(|(at, centre, action)| HistoryEntry { at, centre, action })
                        .collect(),
                    duplicates,
                }))
            })
            .await?
            .ok_or(CatalogueError::NotFound(wanted))
    }

    /// Adds a record from a form, with this centre's copies when `copies`
    /// is given; returns its id.
    pub async fn add_record(
        &self,
        form: &RecordForm,
        holding: Option<Holding>,
        by: By<'_>,
    ) -> Result<RecordId, CatalogueError> {
        let fields = form.parse().map_err(CatalogueError::Invalid)?;
        self.add_fields(fields, holding, by).await
    }

    /// Adds a record whose fields are already checked.
    pub async fn add_fields(
        &self,
        fields: RecordFields,
        holding: Option<Holding>,
        by: By<'_>,
    ) -> Result<RecordId, CatalogueError> {
        let id = RecordId::from_entropy(self.random());
        let rid = id.clone();
        let journal = self.journal_entry(by, "notice ajoutée", id.as_str());
        self.store()
            .call(move |conn| {
                projection::with_bucket_then(
                    conn,
                    &rid,
                    |doc| {
                        doc.create_record(&rid, &fields)?;
                        if let Some(h) = &holding {
                            doc.set_holding(&rid, h)?;
                        }
                        Ok(())
                    },
                    |tx| journal.write(tx),
                )
            })
            .await
            .map_err(from_store)
            .inspect(|_| self.forget_facets())?;
        Ok(id)
    }

    /// Saves a record form: `base` is the form as it was shown, so only the
    /// fields the person changed are written. A description changed
    /// elsewhere since then is not overwritten ([`CatalogueError::Changed`]).
    pub async fn edit_record(
        &self,
        id: &str,
        base: &RecordForm,
        form: &RecordForm,
        by: By<'_>,
    ) -> Result<usize, CatalogueError> {
        let id = parse_id(id)?;
        let new = form.parse().map_err(CatalogueError::Invalid)?;
        // The base was shown from a stored record: it parses, or it was
        // tampered with and nothing is kept of it.
        let base = base.parse().map_err(CatalogueError::Invalid)?;
        let edits = edits_between(&base, &new);
        if edits.is_empty() {
            return Err(CatalogueError::NoChange);
        }
        self.apply_edits(id, edits, Some(base.description), by)
            .await
    }

    /// Applies edits as one change (the CLI's `catalogue edit`).
    pub async fn edit_fields(
        &self,
        id: &str,
        edits: Vec<RecordEdit>,
        by: By<'_>,
    ) -> Result<usize, CatalogueError> {
        let id = parse_id(id)?;
        if edits.is_empty() {
            return Err(CatalogueError::NoChange);
        }
        self.apply_edits(id, edits, None, by).await
    }

    async fn apply_edits(
        &self,
        id: RecordId,
        edits: Vec<RecordEdit>,
        description_base: Option<String>,
        by: By<'_>,
    ) -> Result<usize, CatalogueError> {
        let n = edits.len();
        let new_publics = edits
            .iter()
            .any(|e| matches!(e, RecordEdit::AddPublic(_) | RecordEdit::RemovePublic(_)));
        let journal = self.journal_entry(by, "notice modifiée", id.as_str());
        let changed = self
            .store()
            .call(move |conn| {
                projection::with_bucket_then(
                    conn,
                    &id,
                    |doc| {
                        let Some(current) = doc.record(&id) else {
                            return Ok(Err(CatalogueError::NotFound(id.to_string())));
                        };
                        let rewrites_description = edits
                            .iter()
                            .any(|e| matches!(e, RecordEdit::ReplaceDescription(_)));
                        if rewrites_description
                            && let Some(base) = &description_base
                            && current.fields.description.trim() != base.trim()
                        {
                            return Ok(Err(CatalogueError::Changed(id.to_string())));
                        }
                        doc.edit_record(&id, &edits)?;
                        Ok(Ok(()))
                    },
                    |tx| journal.write(tx),
                )
            })
            .await
            .map_err(from_store)?;
        if new_publics {
            self.forget_facets();
        }
        changed.map(|()| n)
    }

    /// Sets this centre's copies of a record.
    pub async fn set_holding(
        &self,
        id: &str,
        holding: Holding,
        by: By<'_>,
    ) -> Result<(), CatalogueError> {
        let id = parse_id(id)?;
        let journal = self.journal_entry(by, "exemplaires modifiés", id.as_str());
        self.store()
            .call(move |conn| {
                projection::with_bucket_then(
                    conn,
                    &id,
                    |doc| Ok(doc.set_holding(&id, &holding)?),
                    |tx| journal.write(tx),
                )
            })
            .await
            .map_err(from_store)
            .inspect(|_| self.forget_facets())
    }

    /// Sets this centre's review of a record, under a function's name.
    pub async fn set_review(
        &self,
        id: &str,
        role: ReviewerRole,
        review: Review,
        by: By<'_>,
    ) -> Result<(), CatalogueError> {
        let id = parse_id(id)?;
        let journal = self.journal_entry(by, "avis donné", id.as_str());
        self.store()
            .call(move |conn| {
                projection::with_bucket_then(
                    conn,
                    &id,
                    |doc| Ok(doc.set_review(&id, role, &review)?),
                    |tx| journal.write(tx),
                )
            })
            .await
            .map_err(from_store)
    }

    /// Settles a conflict: writes `value` again, which every centre then sees.
    pub async fn keep_value(
        &self,
        id: &str,
        field: &str,
        value: &str,
        by: By<'_>,
    ) -> Result<(), CatalogueError> {
        let invalid = |field| {
            CatalogueError::Invalid(vec![FieldError {
                field,
                problem: Problem::UnknownCode(value.to_owned()),
            }])
        };
        let edit = match field {
            "title" => RecordEdit::Title(value.to_owned()),
            "doc_type" => RecordEdit::DocType(value.to_owned()),
            "creator" => RecordEdit::Creator(value.to_owned()),
            "publisher" => RecordEdit::Publisher(value.to_owned()),
            "conditions_of_use" => RecordEdit::ConditionsOfUse(value.to_owned()),
            "year" => RecordEdit::Year(Some(value.parse().map_err(|_| invalid(Field::Year))?)),
            _ => return Err(invalid(Field::Title)),
        };
        self.apply_edits(parse_id(id)?, vec![edit], None, by)
            .await
            .map(|_| ())
    }

    /// Candidate duplicate pairs over the whole catalogue.
    pub async fn duplicates(&self) -> Result<Vec<(Record, Record)>, CatalogueError> {
        Ok(self.store().call(|c| projection::duplicates(c)).await?)
    }

    /// Every conflicting field of the catalogue.
    pub async fn conflicts(&self) -> Result<Vec<model::FieldConflict>, CatalogueError> {
        Ok(self.store().call(|c| projection::conflicts(c)).await?)
    }

    /// Merges two duplicates; every centre's copies stay visible on the survivor.
    pub async fn merge(
        &self,
        a: &str,
        b: &str,
        by: By<'_>,
    ) -> Result<model::MergePlan, CatalogueError> {
        let (a, b) = (parse_id(a)?, parse_id(b)?);
        if a == b {
            return Err(CatalogueError::CannotMerge(a.to_string(), b.to_string()));
        }
        let journal = self.journal_entry(by, "notices fusionnées", &format!("{a} {b}"));
        self.store()
            .call(move |conn| {
                let plan = projection::merge(conn, &a, &b)?;
                journal.write_alone(conn)?;
                Ok(plan)
            })
            .await
            .map_err(from_store)
            .inspect(|_| self.forget_facets())
    }

    /// A record exactly as its bucket holds it (an alias stays an alias).
    pub async fn stored_record(&self, id: &str) -> Result<Record, CatalogueError> {
        let id = parse_id(id)?;
        let wanted = id.to_string();
        self.store()
            .call(move |c| projection::show(c, &id))
            .await?
            .ok_or(CatalogueError::NotFound(wanted))
    }

    /// The plain search the CLI prints (no paging, no copies).
    pub async fn search_hits(
        &self,
        query: SearchQuery,
    ) -> Result<Vec<projection::Hit>, CatalogueError> {
        Ok(self
            .store()
            .call(move |c| projection::search(c, &query))
            .await?)
    }

    /// Imports a library system's CSV export, reporting progress.
    pub async fn import_catalogue(
        &self,
        path: std::path::PathBuf,
        progress: Arc<dyn import::Progress>,
    ) -> Result<import::ImportReport, import::ImportError> {
        self.store()
            .call(move |c| Ok(import::import(c, &path, progress.as_ref())))
            .await?
            .inspect(|_| self.forget_facets())
    }

    /// Imports a file already decoded (an upload), reporting progress.
    pub async fn import_decoded(
        &self,
        decoded: import::Decoded,
        progress: Arc<dyn import::Progress>,
        by: Option<&str>,
    ) -> Result<import::ImportReport, import::ImportError> {
        let journal = self.journal_entry(by, "import de notices", "");
        self.store()
            .call(move |c| {
                let report = match import::import_decoded(c, &decoded, progress.as_ref()) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let summary = format!(
                    "{} créées, {} déjà présentes, {} rejetées",
                    report.created,
                    report.already_present,
                    report.rejected.len()
                );
                journal.with_target(summary).write_alone(c)?;
                Ok(Ok(report))
            })
            .await?
            .inspect(|_| self.forget_facets())
    }

    /// The latest records other centres created or changed, newest first.
    pub async fn recent_from_others(
        &self,
        limit: usize,
    ) -> Result<Vec<projection::Activity>, CatalogueError> {
        Ok(self
            .store()
            .call(move |c| projection::recent_activity(c, limit))
            .await?)
    }

    /// Records in the catalogue (aliases included).
    pub async fn catalogue_count(&self) -> Result<i64, CatalogueError> {
        Ok(self.store().call(|c| projection::count(c)).await?)
    }
}

/// Counts and labels shared by the adapters.
pub fn doc_type_label(code: &str) -> String {
    vocab::get()
        .document_types
        .label(code)
        .unwrap_or(code)
        .to_owned()
}

pub fn theme_label(code: &str) -> String {
    vocab::get().themes.label(code).unwrap_or(code).to_owned()
}

/// Sorted (label, code) pairs of a code list, for drop-downs.
pub fn options(list: &vocab::CodeList) -> Vec<(String, String)> {
    list.0
        .iter()
        .map(|c| (c.code.clone(), c.label.clone()))
        .collect()
}

/// Per-centre holdings keyed by centre, for views.
pub type Holdings = BTreeMap<CentreId, Holding>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn node() -> Node {
        Node::in_memory(&CentreId::new("namur").unwrap(), 1_700_000_000, 11)
            .await
            .unwrap()
    }

    fn form(title: &str, year: &str, ages: (&str, &str)) -> RecordForm {
        RecordForm {
            title: title.into(),
            doc_type: "outil_pedagogique".into(),
            year: year.into(),
            age_min: ages.0.into(),
            age_max: ages.1.into(),
            ..RecordForm::default()
        }
    }

    async fn titles(node: &Node, search: Search) -> Vec<String> {
        let page = node
            .search(Search {
                per_page: 20,
                page: 1,
                ..search
            })
            .await
            .unwrap();
        let mut titles: Vec<String> = page.hits.into_iter().map(|h| h.title).collect();
        titles.sort();
        titles
    }

    #[tokio::test]
    async fn age_and_year_filters_keep_what_fits() {
        let node = node().await;
        for f in [
            form("Jeu des petits", "2015", ("3", "6")),
            form("Jeu des ados", "2021", ("12", "18")),
            form("Jeu dès 10 ans", "2019", ("10", "")),
            form("Jeu sans âge", "", ("", "")),
        ] {
            node.add_record(&f, None, None).await.unwrap();
        }
        let q = |age: Option<u8>, from: Option<u16>, to: Option<u16>| Search {
            text: "jeu".into(),
            age,
            year_from: from,
            year_to: to,
            ..Search::default()
        };
        assert_eq!(
            titles(&node, q(Some(12), None, None)).await,
            ["Jeu des ados", "Jeu dès 10 ans"]
        );
        assert_eq!(
            titles(&node, q(Some(5), None, None)).await,
            ["Jeu des petits"]
        );
        assert_eq!(
            titles(&node, q(None, Some(2016), None)).await,
            ["Jeu des ados", "Jeu dès 10 ans"]
        );
        assert_eq!(
            titles(&node, q(None, Some(2015), Some(2019))).await,
            ["Jeu des petits", "Jeu dès 10 ans"]
        );
        assert_eq!(titles(&node, q(None, None, None)).await.len(), 4);
    }
}
