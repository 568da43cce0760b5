//! The command line of a cauda daemon binary: `train` runs one training run standalone (the same
//! engine path the daemon's workers run) and prints one JSON object per epoch; `demo` runs the
//! demo study on the embedded data and prints its report; `serve` runs the daemon's gRPC API;
//! `plugins` lists what the engine serves; `work` is one attempt, spawned by `serve`.
//!
//! It lives in the library so that a crate extending cauda builds its own daemon binary with
//! its own plugins: `caudad::cli::main_with(engine)` is that binary's whole `main`, as it is
//! `caudad`'s with [`Engine::builtin`] (`examples/custom-plugin/`). The daemon spawns its
//! workers from its own executable, so they run the same `main` with the same engine. This is
//! the binaries' edge: `anyhow` stops here.

mod demo_cmd;
mod hash_token_cmd;
mod plugins_cmd;
mod serve_cmd;
mod train_cmd;
mod work_cmd;

use clap::{Parser, Subcommand};

use crate::engine::Engine;

#[derive(Parser)]
#[command(
    name = "caudad",
    version,
    about = "cauda's experiment daemon for long-tailed learning"
)]
struct Cli {
    /// Log format on stderr (`RUST_LOG` sets the level; default warn).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CAUDAD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one training run (a spec without [sweep]) without the daemon.
    Train(train_cmd::TrainArgs),
    /// Train every method of the demo study on the embedded long-tailed digits and print the report.
    Demo(demo_cmd::DemoArgs),
    /// List the plugin registry (samplers, losses, augmentations, module improvements) and presets.
    Plugins(plugins_cmd::PluginsArgs),
    /// Serve the gRPC API (experiments, runs, metrics, devices, plugins) until Ctrl-C.
    Serve(serve_cmd::ServeArgs),
    /// Print the SHA-256 of a token read on stdin (for `[[auth.users]]` in caudad.toml).
    HashToken(hash_token_cmd::HashTokenArgs),
    /// Run one attempt of one run for the daemon (started by `caudad serve`, not by hand).
    #[command(hide = true)]
    Work(work_cmd::WorkArgs),
}

/// A daemon binary's `main`: parses the command line and runs the subcommand with `engine`'s
/// plugins and presets. The binary that calls it must be the one whose `work` subcommand the
/// daemon's workers run (`serve` spawns its own executable), so every process of a daemon has
/// the same engine.
pub fn main_with(engine: Engine) -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let ok = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match cli.command {
        Command::Train(args) => ok(train_cmd::run(args, &engine)),
        Command::Demo(args) => ok(demo_cmd::run(args, engine)),
        Command::Plugins(args) => ok(plugins_cmd::run(args, &engine)),
        Command::Serve(args) => ok(serve_cmd::run(args, engine)),
        Command::HashToken(args) => ok(hash_token_cmd::run(args)),
        Command::Work(args) => Ok(work_cmd::run(args, &engine)),
    }
}
