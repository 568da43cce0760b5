//! The daemon's library: the domain model of experiments and runs, and (as they land) the store,
//! the scheduling policy, the executors and the gRPC adapters. The binary in `main.rs` is a thin
//! command-line edge over it.

pub mod model;
pub mod scheduler;
pub mod store;
