//! The daemon's library: GPU discovery, the daemon core over the domain model (`cauda-model`),
//! the store (`cauda-store`) and the scheduling policy (`cauda-scheduler`), re-exported here as
//! `model`, `store` and `scheduler`; its gRPC adapters, the process executor, the worker
//! side of an attempt (engine runs, and command runs: `command`), the Prometheus endpoint, the
//! watched folders and the config. The binary
//! (`src/bin/caudad/`: `main.rs` and one `*_cmd.rs` per subcommand) is a thin command-line edge
//! over it.

pub mod command;
pub mod config;
pub mod core;
pub mod executor;
pub mod folders;
pub mod gpu;
pub mod grpc;
pub mod metrics;
pub mod node;
pub mod run_config;
pub mod worker;

// The crates split out of the daemon, under the names the daemon's modules use for them.
pub use cauda_model as model;
pub use cauda_scheduler as scheduler;
pub use cauda_store as store;
