//! tollgate: a declarative gateway engine for a bank's partner API platform.
//!
//! Policy files are loaded and validated (`policy`), compiled into an immutable
//! `Pipeline` (`compile`, `pipeline`), and served on hyper (`server`), with the pipeline
//! swapped atomically when the files change. Modules are named for the phases a request
//! meets: `route`, `body`, `upstream`; `problem` maps every failure to RFC 9457.

#![forbid(unsafe_code)]
// Policy files and requests must never be able to crash the gateway.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access;
pub mod body;
pub mod cli;
pub mod compile;
pub mod diagnostics;
pub mod identity;
pub mod legacy;
pub mod limits;
pub mod meter;
pub mod pipeline;
pub mod policy;
pub mod problem;
pub mod route;
pub mod server;
pub mod state;
pub mod upstream;

/// mimalloc: JSON trees (projection, masking, legacy decoding) are allocation-heavy, and the
/// system allocator was a third of their time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
