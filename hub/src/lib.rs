//! The federation hub: merges the shared documents of the ten centres' nodes
//! and passes changes on, over gRPC with mutual TLS.
//!
//! Code map: `pki` makes the certificates; `tls` verifies them at accept time
//! and turns them into an `identity::Identity`; `access` says which spaces an
//! identity may read or write; `validate` checks every incoming change;
//! `store` keeps documents in SQLite (a storage actor); `docs` holds the live
//! documents and the change broadcasts; `rpc` is the gRPC edge (the only
//! module that sees protobuf types); `metrics` serves Prometheus counters;
//! `stats_report` merges the centres' statistics and `dashboard` shows them
//! to committees over HTTPS (read-only); `server` ties them together with a
//! bind / shutdown / join lifecycle.

pub mod access;
pub mod config;
pub mod dashboard;
pub mod docs;
pub mod identity;
pub mod metrics;
pub mod pki;
pub mod recover;
pub mod rpc;
pub mod server;
pub mod stats_report;
pub mod store;
pub mod survey_cli;
pub mod tls;
pub mod validate;

pub use config::Config;
pub use identity::Identity;
pub use server::{BindError, Hub, PayloadTap, ServeError};
