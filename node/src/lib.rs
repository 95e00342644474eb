//! A CLPS node: the centre's own records in SQLite, working fully offline.
//!
//! `store` owns the database (one thread, one connection); `records` holds the
//! local record kinds and their validation; `stats` computes the published
//! cross tables from records; `seed` draws a realistic year; `cli` is the
//! French command line staff use.

pub mod centre;
pub mod cli;
pub mod records;
pub mod seed;
pub mod stats;
pub mod store;
