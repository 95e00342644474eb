//! The checks the hub runs on every incoming change before storing or
//! relaying it, given the document as the hub has it and the centre named by
//! the client certificate.
//!
//! The rules, in order:
//!
//! 1. The genesis change of a document (see `schema`) is accepted from anyone,
//!    provided it is byte for byte the one this crate builds for that id.
//! 2. Any other change must be made by a centre actor ([`CentreActor`]) of the
//!    authenticated centre.
//! 3. Its dependencies must all be in the document: the caller orders
//!    changes causally (see [`causal_order`]).
//! 4. `stats/<centre>` is written by that centre only.
//! 5. The root of a document is fixed by its genesis: no later change writes it.
//! 6. In the catalogue: records are never deleted or replaced, a record's
//!    containers are created with it and never replaced, `created_by` is
//!    written only in the change that creates the record and, like
//!    `last_edited_by`, only with the author's id; holdings, reviews and
//!    download counters are written only under the author's own keys.
//! 7. In a point d'appui repository: per-centre notes, « why this tool »
//!    notes and `listed_by` entries are written only under the author's key.
//! 8. In a survey, judged on the document as the author saw it (the state at
//!    the change's dependencies, so an answer taken offline before another
//!    centre closed the survey is still accepted): no nested objects; a
//!    centre adds only itself to the participants; settings change only in
//!    draft; the lifecycle keys are added once each, in order (open, close,
//!    publish) and name the author; the questionnaire and its version
//!    counter (+1 per edit batch, logged under the author's name) change only
//!    until close; raw answers only when the survey shares them, only while
//!    open, only for respondents assigned to the author's centre and filed
//!    under its name; coding names the coder; aggregates are written only
//!    under the author's key; nothing changes once published.
//!
//! The check decodes the change's operations and resolves each one's target
//! object to a path: objects the change creates itself are resolved from
//! their creating operation, older objects through `parents` in `before`.
//! Operations are inspected rather than the patches of a diff because a write
//! that loses a conflict produces no visible patch yet stays in the history.
//! A single change costs a decode and one path lookup per distinct object it
//! touches; nothing is copied.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjId, Prop, ROOT, ReadDoc, ScalarValue};

use crate::actor::{ActorError, CentreActor};
use crate::centres::CentreId;
use crate::docs::catalogue::{RECORD_CONTAINERS, RecordId, keys as cat, read_record, rules};
use crate::docs::ids::{DocId, DocKind};
use crate::docs::schema::{self, genesis_actor};

/// Why the hub refuses a change.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("change actor is not a federation actor")]
    Actor(#[from] ActorError),
    #[error("change was made by centre {actor} but sent by centre {author}")]
    ForeignActor { actor: CentreId, author: CentreId },
    #[error("change claims to be the genesis of {doc} but differs from it")]
    ForgedGenesis { doc: String },
    #[error("change depends on {0}, which the document does not have yet")]
    MissingDependency(ChangeHash),
    #[error("change touches an object the document does not have")]
    UnknownObject,
    #[error("change operations cannot be decoded")]
    Undecodable,
    #[error("only centre {owner} may write {doc}")]
    ForeignStats { owner: CentreId, doc: String },
    #[error("change writes the holdings of {owner} in record {record}")]
    ForeignHoldings { record: String, owner: String },
    #[error("change rewrites the provenance of existing record {record}")]
    ProvenanceRewrite { record: String },
    #[error("change sets {field} of record {record} to « {value} », not to the author {author}")]
    ProvenanceNotAuthor {
        record: String,
        field: &'static str,
        value: String,
        author: CentreId,
    },
    #[error("change writes « {key} » in {container}, which only {owner} may write")]
    ForeignKey {
        container: String,
        key: String,
        owner: String,
    },
    #[error("survey change refused: {0}")]
    Survey(String),
    #[error("change alters the fixed structure of the document at {path}")]
    Structure { path: String },
    #[error("change writes {path}: {why}")]
    Schema { path: String, why: String },
    #[error("record {record} as the change leaves it is refused: {why}")]
    Record { record: String, why: String },
    #[error("change is {bytes} bytes, more than the {limit} a change may hold")]
    TooLarge { bytes: usize, limit: usize },
    #[error("change {index} of the batch is refused")]
    Batch {
        index: usize,
        #[source]
        source: Box<ValidationError>,
    },
    #[error("change cannot be applied")]
    Apply(#[source] automerge::AutomergeError),
    #[error("genesis of {doc} cannot be built")]
    Genesis {
        doc: String,
        #[source]
        source: Box<schema::DocError>,
    },
}

/// Most bytes one change may hold, far below a document's limit: a record
/// with a full description is a few tens of kB.
pub const MAX_CHANGE_BYTES: usize = 512 * 1024;

/// What a change wrote, to be checked again once it is applied
/// ([`check_applied`]).
#[derive(Debug, Clone, Default)]
pub struct Touched {
    records: BTreeSet<String>,
}

/// Checks one change against the document it is sent for. `before` must hold
/// every dependency of the change. Only the operation rules: the hub also
/// runs [`check_applied`] on the document with the change applied (the sync
/// gate does both).
pub fn validate_change(
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    author: &CentreId,
) -> Result<(), ValidationError> {
    check_ops(doc_id, before, change, author, false).map(|_| ())
}

/// The operation rules for a change the node made itself and already
/// applied to `after` (its own copy), before the node commits it: the same
/// rules the hub runs, judged on the document as the change's dependencies
/// left it.
pub fn validate_own_change(
    doc_id: &DocId,
    after: &Automerge,
    change: &Change,
    author: &CentreId,
) -> Result<(), ValidationError> {
    let touched = check_ops(doc_id, after, change, author, true)?;
    check_applied(doc_id, after, &touched)
}

/// The content rules, on the document with the change applied: every record
/// it touched reads back, within its bounds, with no e-mail address or phone
/// number in any text.
pub fn check_applied(
    doc_id: &DocId,
    after: &Automerge,
    touched: &Touched,
) -> Result<(), ValidationError> {
    if let DocKind::Catalogue { .. } = doc_id.kind() {
        for record in &touched.records {
            let refused = |why: String| ValidationError::Record {
                record: record.clone(),
                why,
            };
            let id = RecordId::parse(record).map_err(|e| refused(e.to_string()))?;
            let read = read_record(after, &id).ok_or_else(|| refused("unreadable".to_owned()))?;
            rules::check_record(&read).map_err(refused)?;
        }
    }
    Ok(())
}

/// The operation rules; `applied`: `doc` already holds the change (the
/// node's own), so what existed is judged at the change's dependencies.
pub fn check_ops(
    doc_id: &DocId,
    doc: &Automerge,
    change: &Change,
    author: &CentreId,
    applied: bool,
) -> Result<Touched, ValidationError> {
    let before = doc;
    if change.actor_id() == &genesis_actor() {
        let genesis =
            schema::genesis_change(doc_id).map_err(|source| ValidationError::Genesis {
                doc: doc_id.to_string(),
                source: Box::new(source),
            })?;
        return if genesis.hash() == change.hash() {
            Ok(Touched::default())
        } else {
            Err(ValidationError::ForgedGenesis {
                doc: doc_id.to_string(),
            })
        };
    }

    let actor = CentreActor::parse(change.actor_id())?;
    if &actor.centre != author {
        return Err(ValidationError::ForeignActor {
            actor: actor.centre,
            author: author.clone(),
        });
    }
    let bytes = change.raw_bytes().len();
    if bytes > MAX_CHANGE_BYTES {
        return Err(ValidationError::TooLarge {
            bytes,
            limit: MAX_CHANGE_BYTES,
        });
    }
    for dep in change.deps() {
        if before.get_change_meta_by_hash(dep).is_none() {
            return Err(ValidationError::MissingDependency(*dep));
        }
    }
    if let DocKind::Stats { centre } = doc_id.kind()
        && centre != author
    {
        return Err(ValidationError::ForeignStats {
            owner: centre.clone(),
            doc: doc_id.to_string(),
        });
    }

    let mut check = Checker {
        doc_id,
        before,
        actor: &actor,
        change_actor: change.actor_id(),
        local_paths: HashMap::new(),
        cache: HashMap::new(),
        created_records: HashSet::new(),
        deps: change.deps().to_vec(),
        applied,
        touched: Touched::default(),
    };
    // automerge 0.12 panics decoding a change whose operations name an
    // actor missing from the change's actor table (found by the fault
    // suite's fuzzing, tests/fixtures/fuzz/crash-*.bin). Such bytes can
    // only come from a hostile peer: refuse the change instead.
    let expanded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode()))
        .map_err(|_| ValidationError::Undecodable)?;
    let start = expanded.start_op.get();
    for (index, op) in expanded.operations.iter().enumerate() {
        let path = check.resolve(&op.obj)?;
        let key = match &op.key {
            Key::Map(k) => Some(k.as_str()),
            Key::Seq(_) => None,
        };
        check.op(&path, key, &op.action)?;
        if let OpType::Make(_) = op.action {
            let mut child = path.clone();
            child.push(key.unwrap_or("#").to_owned());
            let id = start + u64::try_from(index).unwrap_or(u64::MAX);
            check.local_paths.insert(id, child);
        }
    }
    Ok(check.touched)
}

/// Checks a batch of changes in the given order, each against `before` plus
/// the changes before it. The caller passes them in causal order.
pub fn validate_changes(
    doc_id: &DocId,
    before: &Automerge,
    changes: &[Change],
    author: &CentreId,
) -> Result<(), ValidationError> {
    let batch = |index: usize| {
        move |source: ValidationError| ValidationError::Batch {
            index,
            source: Box::new(source),
        }
    };
    // Later changes may build on objects created by earlier ones, so each is
    // applied to a private copy once it has passed, and checked again there.
    let mut work = before.fork();
    for (index, change) in changes.iter().enumerate() {
        let touched = check_ops(doc_id, &work, change, author, false).map_err(batch(index))?;
        work.apply_changes([change.clone()])
            .map_err(|e| batch(index)(ValidationError::Apply(e)))?;
        check_applied(doc_id, &work, &touched).map_err(batch(index))?;
    }
    Ok(())
}

/// Orders changes so that each comes after those of its dependencies that are
/// in the batch; otherwise keeps the given order.
pub fn causal_order(changes: Vec<Change>) -> Vec<Change> {
    let in_batch: HashSet<ChangeHash> = changes.iter().map(Change::hash).collect();
    let mut placed: HashSet<ChangeHash> = HashSet::new();
    let mut pending = changes;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for change in pending {
            let ready = change
                .deps()
                .iter()
                .all(|d| !in_batch.contains(d) || placed.contains(d));
            if ready {
                placed.insert(change.hash());
                out.push(change);
            } else {
                rest.push(change);
            }
        }
        if rest.len() == before {
            // A dependency cycle cannot come from real changes; keep the
            // remainder as given and let validation report it.
            out.extend(rest);
            break;
        }
        pending = rest;
    }
    out
}

struct Checker<'a> {
    doc_id: &'a DocId,
    before: &'a Automerge,
    actor: &'a CentreActor,
    change_actor: &'a automerge::ActorId,
    /// Paths of objects created by this change, by operation counter.
    local_paths: HashMap<u64, Vec<String>>,
    /// Paths of objects of `before` already looked up.
    cache: HashMap<ObjectId, Vec<String>>,
    /// Records created by this change (their provenance may be written).
    created_records: HashSet<String>,
    /// The change's dependencies: the document as its author saw it.
    deps: Vec<ChangeHash>,
    /// `before` already holds the change (a node checking its own).
    applied: bool,
    touched: Touched,
}

impl Checker<'_> {
    fn resolve(&mut self, obj: &ObjectId) -> Result<Vec<String>, ValidationError> {
        let opid = match obj {
            ObjectId::Root => return Ok(Vec::new()),
            ObjectId::Id(opid) => opid,
        };
        if opid.actor() == self.change_actor
            && let Some(path) = self.local_paths.get(&opid.counter())
        {
            return Ok(path.clone());
        }
        if let Some(path) = self.cache.get(obj) {
            return Ok(path.clone());
        }
        let exid = self
            .before
            .import_obj(&format!("{}@{}", opid.counter(), opid.actor()))
            .map_err(|_| ValidationError::UnknownObject)?;
        if self.before.object_type(&exid).is_err() {
            return Err(ValidationError::UnknownObject);
        }
        let parents = self
            .before
            .parents(&exid)
            .map_err(|_| ValidationError::UnknownObject)?;
        let path: Vec<String> = parents
            .path()
            .into_iter()
            .map(|(_, prop)| match prop {
                Prop::Map(k) => k,
                Prop::Seq(_) => "#".to_owned(),
            })
            .collect();
        self.cache.insert(obj.clone(), path.clone());
        Ok(path)
    }

    fn op(
        &mut self,
        path: &[String],
        key: Option<&str>,
        action: &OpType,
    ) -> Result<(), ValidationError> {
        if path.is_empty() {
            return Err(ValidationError::Structure {
                path: format!("/{}", key.unwrap_or("")),
            });
        }
        match self.doc_id.kind() {
            DocKind::Catalogue { .. } => self.catalogue_op(path, key, action),
            DocKind::Appui { .. } => self.appui_op(path, key),
            DocKind::Survey { .. } => self.survey_op(path, key, action),
            DocKind::Stats { .. } => match path {
                [top] if top == crate::docs::stats::FIGURES_KEY => {
                    crate::docs::stats::check_figure_write(key, action)
                        .map_err(|why| self.schema_error(path, key, why))
                }
                _ => Err(ValidationError::Structure {
                    path: format!("/{}/{}", path.join("/"), key.unwrap_or("#")),
                }),
            },
        }
    }

    fn author(&self) -> &CentreId {
        &self.actor.centre
    }

    fn catalogue_op(
        &mut self,
        path: &[String],
        key: Option<&str>,
        action: &OpType,
    ) -> Result<(), ValidationError> {
        let structure = |path: &[String], key: Option<&str>| ValidationError::Structure {
            path: format!("/{}/{}", path.join("/"), key.unwrap_or("#")),
        };
        match path {
            [top] if top == cat::RECORDS => {
                let Some(id) = key else {
                    return Err(structure(path, key));
                };
                let exists = schema::get_obj(self.before, &ROOT, cat::RECORDS)
                    .map(|records: ObjId| {
                        let at_deps =
                            matches!(self.before.get_at(&records, id, &self.deps), Ok(Some(_)));
                        // A node checking its own change finds the record it
                        // just created: only what its author saw counts.
                        at_deps
                            || (!self.applied
                                && matches!(self.before.get(&records, id), Ok(Some(_))))
                    })
                    .unwrap_or(false);
                match action {
                    OpType::Make(_) if !exists && !self.created_records.contains(id) => {
                        if !matches!(action, OpType::Make(automerge::ObjType::Map)) {
                            return Err(self.schema_error(
                                path,
                                key,
                                "a record is a map".to_owned(),
                            ));
                        }
                        let bucket = match self.doc_id.kind() {
                            DocKind::Catalogue { bucket } => *bucket,
                            _ => 0,
                        };
                        rules::check_new_record_id(id, bucket, self.author())
                            .map_err(|why| self.schema_error(path, key, why))?;
                        self.created_records.insert(id.to_owned());
                        self.touched.records.insert(id.to_owned());
                        Ok(())
                    }
                    _ => Err(structure(path, key)),
                }
            }
            [top, record] if top == cat::RECORDS => {
                let Some(field) = key else {
                    return Err(structure(path, key));
                };
                let created_here = self.created_records.contains(record);
                if field == cat::CREATED_BY || field == cat::LAST_EDITED_BY {
                    if field == cat::CREATED_BY && !created_here {
                        return Err(ValidationError::ProvenanceRewrite {
                            record: record.clone(),
                        });
                    }
                    let value = match action {
                        OpType::Put(value) => value,
                        // Writing the value a conflicted key already shows
                        // is encoded by Automerge as a delete of the other
                        // values: harmless, and it names nobody.
                        OpType::Delete if field == cat::LAST_EDITED_BY => return Ok(()),
                        _ => {
                            return Err(ValidationError::ProvenanceRewrite {
                                record: record.clone(),
                            });
                        }
                    };
                    let value = match value {
                        ScalarValue::Str(s) => s.to_string(),
                        other => other.to_string(),
                    };
                    if value != self.author().as_str() {
                        return Err(ValidationError::ProvenanceNotAuthor {
                            record: record.clone(),
                            field: if field == cat::CREATED_BY {
                                cat::CREATED_BY
                            } else {
                                cat::LAST_EDITED_BY
                            },
                            value,
                            author: self.author().clone(),
                        });
                    }
                    return Ok(());
                }
                if RECORD_CONTAINERS.contains(&field) && !created_here {
                    return Err(structure(path, key));
                }
                self.touched.records.insert(record.clone());
                rules::check_field(field, action, created_here)
                    .map_err(|why| self.schema_error(path, Some(field), why))
            }
            [top, record, container] if top == cat::RECORDS => {
                self.touched.records.insert(record.clone());
                self.owned_entry(record, container, key)?;
                rules::check_entry(container, key, action, self.actor)
                    .map_err(|why| self.schema_error(path, key, why))
            }
            _ => Err(structure(path, key)),
        }
    }

    /// Holdings, reviews and download counters under another centre's key.
    fn owned_entry(
        &self,
        record: &str,
        container: &str,
        key: Option<&str>,
    ) -> Result<(), ValidationError> {
        {
            {
                let Some(key) = key else {
                    return Ok(());
                };
                let mut parts = key.split('/');
                let first = parts.next().unwrap_or("");
                if container == cat::HOLDINGS && first != self.author().as_str() {
                    return Err(ValidationError::ForeignHoldings {
                        record: record.to_owned(),
                        owner: first.to_owned(),
                    });
                }
                if container == cat::REVIEWS && first != self.author().as_str() {
                    return Err(ValidationError::ForeignKey {
                        container: format!("reviews of {record}"),
                        key: key.to_owned(),
                        owner: first.to_owned(),
                    });
                }
                if container == cat::DOWNLOADS {
                    let centre = parts.next().unwrap_or("");
                    let instance = parts.next().unwrap_or("");
                    if centre != self.author().as_str()
                        || instance != hex::encode(self.actor.instance)
                    {
                        return Err(ValidationError::ForeignKey {
                            container: format!("downloads of {record}"),
                            key: key.to_owned(),
                            owner: format!("{centre}/{instance}"),
                        });
                    }
                }
                Ok(())
            }
        }
    }

    fn schema_error(&self, path: &[String], key: Option<&str>, why: String) -> ValidationError {
        let mut shown: Vec<&str> = path.iter().map(String::as_str).collect();
        shown.push(key.unwrap_or("#"));
        let mut path = format!("/{}", shown.join("/"));
        // The path echoes the sender's keys: a short prefix is enough.
        if path.chars().count() > 200 {
            path = path.chars().take(200).collect::<String>() + "…";
        }
        ValidationError::Schema { path, why }
    }

    fn survey_op(
        &mut self,
        path: &[String],
        key: Option<&str>,
        action: &OpType,
    ) -> Result<(), ValidationError> {
        use crate::docs::survey::{self as sv, Stage, keys as sk};
        let refuse = |why: String| Err(ValidationError::Survey(why));
        let ([container], Some(key)) = (path, key) else {
            return Err(ValidationError::Structure {
                path: format!("/{}/{}", path.join("/"), key.unwrap_or("#")),
            });
        };
        if let OpType::Make(_) = action {
            return Err(ValidationError::Structure {
                path: format!("/{container}/{key}"),
            });
        }
        let author = self.author().as_str().to_owned();
        let seen = Some(self.deps.as_slice());
        let stage = sv::stage_at(self.before, seen);
        if stage == Stage::Published {
            return refuse("the survey is published".to_owned());
        }
        let value = match action {
            OpType::Put(ScalarValue::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        let names_author = value.as_deref() == Some(author.as_str());
        match container.as_str() {
            sk::PARTICIPANTS if key != author => {
                refuse(format!("{author} may only add itself to the participants"))
            }
            sk::META if stage != Stage::Draft => {
                refuse("settings change only while the survey is a draft".to_owned())
            }
            sk::META if key == sk::CREATED_BY && !names_author => {
                refuse("created_by must name the author".to_owned())
            }
            sk::STATUS => {
                let needed = match key {
                    sk::OPENED => Stage::Draft,
                    sk::CLOSED => Stage::Open,
                    _ => Stage::Closed,
                };
                let known = [sk::OPENED, sk::CLOSED, sk::PUBLISHED].contains(&key);
                if !known || !names_author || stage != needed {
                    refuse(format!(
                        "« {key} » cannot be set by {author} while the survey is {}",
                        stage.label()
                    ))
                } else {
                    Ok(())
                }
            }
            sk::QUESTIONS | sk::REVISIONS if stage >= Stage::Closed => {
                refuse("the questionnaire is frozen once the survey is closed".to_owned())
            }
            sk::REVISIONS if key == sk::VERSION => match action {
                OpType::Increment(1) => Ok(()),
                _ => refuse("the questionnaire version only goes up by one".to_owned()),
            },
            sk::REVISIONS => {
                if key.split('|').nth(1) == Some(author.as_str()) {
                    Ok(())
                } else {
                    refuse(format!("revision « {key} » is not logged under {author}"))
                }
            }
            sk::ANSWERS => {
                if !sv::answers_shared_at(self.before, seen) {
                    return refuse("this survey keeps raw answers at each centre".to_owned());
                }
                if stage != Stage::Open {
                    return refuse(format!(
                        "answers are written only while the survey is open, not {}",
                        stage.label()
                    ));
                }
                let respondent = sv::key_respondent(key);
                let assigned = sv::respondent_centre_at(self.before, respondent, seen);
                if assigned.as_deref() != Some(author.as_str()) {
                    return refuse(format!(
                        "respondent « {respondent} » is not assigned to {author}"
                    ));
                }
                if key.ends_with(&format!("|{}", sk::CENTRE)) && !names_author {
                    return refuse("an answer is filed under its collecting centre".to_owned());
                }
                Ok(())
            }
            sk::CODING => {
                if !sv::answers_shared_at(self.before, seen) {
                    return refuse("this survey keeps raw answers at each centre".to_owned());
                }
                match action {
                    OpType::Put(_) if !names_author => {
                        refuse("a code is signed by the coding centre".to_owned())
                    }
                    _ => Ok(()),
                }
            }
            sk::AGGREGATES if sv::aggregate_owner(key) != author => {
                Err(ValidationError::ForeignKey {
                    container: container.clone(),
                    key: key.to_owned(),
                    owner: sv::aggregate_owner(key).to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    fn appui_op(&mut self, path: &[String], key: Option<&str>) -> Result<(), ValidationError> {
        if let ([container], Some(key)) = (path, key)
            && let Some(owner) = crate::docs::appui::key_owner(container, key)
            && owner != self.author().as_str()
        {
            return Err(ValidationError::ForeignKey {
                container: container.clone(),
                key: key.to_owned(),
                owner,
            });
        }
        Ok(())
    }
}

/// What [`replay`] made of a centre's changes on top of another copy.
#[derive(Debug)]
pub struct Replay {
    /// `base` with every change that could be kept applied.
    pub doc: Automerge,
    /// Changes applied (or already in `base`).
    pub kept: Vec<ChangeHash>,
    /// Changes left out, each with why: refused by the rules, or built on
    /// a change that was left out.
    pub dropped: Vec<(ChangeHash, String)>,
}

/// Replays `changes` (a centre's own, in any order) on `base` as the hub
/// would receive them: each one whose dependencies are there and that
/// passes both steps of the validation is applied; the others are left out
/// with their reason. Used to rebuild a document the hub refused from the
/// hub's copy, keeping every valid change of the centre.
pub fn replay(doc_id: &DocId, base: Automerge, changes: Vec<Change>, author: &CentreId) -> Replay {
    let mut doc = base;
    let mut kept = Vec::new();
    let mut dropped: Vec<(ChangeHash, String)> = Vec::new();
    for change in causal_order(changes) {
        let hash = change.hash();
        if doc.get_change_meta_by_hash(&hash).is_some() {
            kept.push(hash);
            continue;
        }
        if let Some(dep) = change
            .deps()
            .iter()
            .find(|d| doc.get_change_meta_by_hash(d).is_none())
        {
            let why = if dropped.iter().any(|(h, _)| h == dep) {
                format!("built on {dep}, left out")
            } else {
                format!("depends on {dep}, which neither copy has")
            };
            dropped.push((hash, why));
            continue;
        }
        let verdict = check_ops(doc_id, &doc, &change, author, false).and_then(|touched| {
            let mut trial = doc.fork();
            trial
                .apply_changes([change.clone()])
                .map_err(ValidationError::Apply)?;
            check_applied(doc_id, &trial, &touched)?;
            Ok(trial)
        });
        match verdict {
            Ok(trial) => {
                doc = trial;
                kept.push(hash);
            }
            Err(e) => dropped.push((hash, e.to_string())),
        }
    }
    Replay { doc, kept, dropped }
}
