//! A CLPS node: the centre's own records in SQLite, working fully offline.
//!
//! `store` owns the database (one thread, one connection); `records` holds the
//! local record kinds and their validation; `stats` computes the published
//! cross tables from records; `seed` draws a realistic year; `cli` is the
//! French command line staff use. `shared` keeps the node's copies of the
//! shared Automerge documents; `catalogue` projects the catalogue into SQLite
//! and FTS5 for search; `import` reads a library system's CSV export.

pub mod app;
pub mod appui;
pub mod appui_cli;
pub mod appui_export;
pub mod catalogue;
pub mod catalogue_cli;
pub mod centre;
pub mod cli;
pub mod federation;
pub mod import;
pub mod link;
pub mod publish;
pub mod records;
pub mod recover;
pub mod seed;
pub mod server;
pub mod shared;
pub mod stats;
pub mod store;
pub mod survey;
pub mod survey_cli;
pub mod text;
pub mod user_cli;
pub mod web;
