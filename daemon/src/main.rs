//! `caudad`: cauda's daemon binary. `caudad train SPEC.toml` runs one training run standalone
//! (the same engine path the daemon's workers run) and prints one JSON object per epoch;
//! `caudad demo` runs the demo study on the embedded data and prints its report; `caudad serve`
//! runs the daemon's gRPC API.

mod demo_cmd;
mod plugins_cmd;
mod serve_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "caudad",
    version,
    about = "cauda's experiment daemon for long-tailed learning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Train(args) => train_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Plugins(args) => plugins_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
    }
}
