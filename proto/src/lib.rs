//! The federation's gRPC API (`clps.sync.v1`), generated at build time from
//! `proto/clps/sync/v1/sync.proto` by protox and tonic-prost-build.
//!
//! Only the hub's `rpc` module and the node's `link` module use these types:
//! everything else works on domain types (`DocId`, `SpaceId`, `CentreId`).

#![allow(clippy::all, unused_qualifications)] // generated code

pub mod sync {
    pub mod v1 {
        tonic::include_proto!("clps.sync.v1");
    }
}

pub use sync::v1 as pb;

/// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clps_sync_v1_descriptor.bin"));
