//! The shared documents: which Automerge documents exist, how they are named,
//! and the validation the hub runs on every incoming change.
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

pub mod ids;

pub use ids::{DocId, DocIdError, DocKind, SpaceId};
