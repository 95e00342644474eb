//! The shared documents: which Automerge documents exist, how they are named,
//! their schemas, and the validation the hub runs on every incoming change.
//!
//! Document ids are plain strings `"<kind>/<key>"` so the hub can store and
//! route them without knowing their schema:
//!
//! | id                      | space            | content                              |
//! |-------------------------|------------------|--------------------------------------|
//! | `catalogue/<bucket>`    | `catalogue`      | catalogue records hashed to a bucket |
//! | `appui/<scheme>`        | `appui:<scheme>` | a point d'appui repository           |
//! | `survey/<survey-id>`    | `survey:<id>`    | one joint survey                     |
//! | `stats/<centre-id>`     | `stats`          | one centre's published aggregates    |
//!
//! Each schema lives in its own module, the only place its key strings
//! appear; `schema` holds what they share (root keys, genesis, helpers).

pub mod appui;
pub mod catalogue;
pub mod ids;
pub mod normalize;
pub mod schema;
pub mod stats;
pub mod survey;
pub mod validate;

pub use appui::AppuiDoc;
pub use catalogue::{
    CatalogueDoc, FieldConflict, MergePlan, Record, RecordEdit, RecordFields, RecordId, bucket_of,
    conflicts, duplicate_candidates, merge_records,
};
pub use ids::{CATALOGUE_BUCKETS, DocId, DocIdError, DocKind, SpaceId};
pub use schema::{DocError, SCHEMA_VERSION, create_doc, genesis_change, load_doc, load_doc_with};
pub use stats::StatsDoc;
pub use survey::SurveyDoc;
pub use validate::{
    MAX_CHANGE_BYTES, Replay, Touched, ValidationError, causal_order, check_applied, check_ops,
    replay, validate_change, validate_changes, validate_own_change,
};
