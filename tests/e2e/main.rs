//! cauda's end-to-end suite: every test that drives the real binaries (`caudad serve`, its
//! `caudad work` children, the `cauda` CLI, the Python client, Slurm) over real sockets, one
//! module per area, built as one test binary that shares the harness in `common` (the daemon on
//! 127.0.0.1 port 0, bounded polling, the skip rule). The binaries are the ones `cargo test
//! --workspace` builds next to this test (`common::caudad_bin`); alone, build them first with
//! `cargo build -p caudad -p cauda` (and `-p cauda-custom-plugin` for `custom_plugin_test`,
//! which runs that example crate's own daemon binary). In-process tests stay in their crates.

mod common;
mod render;

mod auth_test;
mod backend_test;
mod benchmarks_test;
mod chaos_test;
mod command_runs_test;
mod custom_plugin_test;
mod data_parallel_test;
mod diskfull_test;
mod engine_test;
mod experiment_test;
mod export_test;
mod grpc_test;
mod imagenet_lt_test;
mod load_test;
mod login_test;
mod metrics_test;
mod ownership_test;
mod packing_test;
mod paths_test;
mod plot_test;
mod python_client_test;
mod recovery_test;
mod render_test;
mod runs_test;
mod serve_cli;
mod slurm_test;
mod tls_test;
