//! The daemon's library: GPU discovery, the daemon core over the domain model (`cauda-model`),
//! the store (`cauda-store`) and the scheduling policy (`cauda-scheduler`), re-exported here as
//! `model`, `store` and `scheduler`; its gRPC adapters, the process executor, the worker
//! side of an attempt (engine runs, and command runs: `command`), the Prometheus endpoint, the
//! watched folders and the config; the plugins and presets it serves (`engine`); and the
//! command line (`cli`: one `*_cmd.rs` per subcommand), which the `caudad` binary
//! (`src/main.rs`) runs with cauda's own engine and a crate extending cauda runs with its own.

pub mod cli;
pub mod command;
pub mod config;
pub mod core;
pub mod engine;
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

pub use engine::Engine;
