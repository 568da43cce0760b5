//! The command line of `cauda`: the global options, one subcommand per file of this folder,
//! and the dispatch from a parsed command to its implementation.

mod cancel;
mod checkpoint;
mod completions;
mod devices;
mod export;
mod logs;
mod ls;
mod metrics;
mod plot;
mod plugins;
mod report;
mod rm;
mod show;
mod submit;
mod watch;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::exit::{self, CliError};

/// cauda: submit long-tailed learning experiments to caudad and follow their runs.
#[derive(Debug, Parser)]
#[command(name = "cauda", version, after_help = exit::HELP)]
pub struct Cli {
    /// Address of the daemon.
    #[arg(
        long,
        global = true,
        env = "CAUDA_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// The CA certificate (PEM) an https:// daemon is verified with (instead of the system's
    /// root certificates).
    #[arg(long, global = true, env = "CAUDA_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit an experiment spec (TOML); prints the experiment id and its runs.
    Submit(submit::Args),
    /// List runs, with their state, devices and pending reason or error.
    Ls(ls::Args),
    /// Show one run in full, including its pending reason and devices.
    Show(show::Args),
    /// Follow a run live: state changes, a progress bar per epoch, log lines, final metrics.
    Watch(watch::Args),
    /// Print a run's log lines; -f follows new ones.
    Logs(logs::Args),
    /// Cancel a run or every unfinished run of an experiment.
    Cancel(cancel::Args),
    /// Print a run's per-epoch metrics as CSV or JSON.
    Metrics(metrics::Args),
    /// List the daemon's plugins and their parameters.
    Plugins(plugins::Args),
    /// List the daemon's devices and the runs placed on them.
    Devices(devices::Args),
    /// Download a run's checkpoint, verify its SHA-256 and write it atomically.
    Checkpoint(checkpoint::Args),
    /// An experiment's report: one row per method (and ratio) over seeds, in the survey's layout.
    Report(report::Args),
    /// Two experiments' reports side by side, with the difference in top-1.
    Compare(report::CompareArgs),
    /// Export a run's weights as safetensors (PyTorch) or Burn's record format.
    Export(export::Args),
    /// Draw an experiment's per-class accuracy, curves, reliability diagram or confusion
    /// matrices as SVG or PNG.
    Plot(plot::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
    /// Check a token (read from stdin) with the daemon and store it for --addr.
    Login(crate::login::LoginArgs),
    /// Forget the token stored for --addr.
    Logout(crate::login::LogoutArgs),
    /// Print the user the daemon takes this client for.
    Whoami(crate::login::WhoAmIArgs),
    /// Delete a finished run (metrics, logs, checkpoints) or an experiment with its runs.
    Rm(rm::Args),
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let addr = cli.addr.as_str();
    crate::connect::set_ca_cert(cli.ca_cert);
    match cli.command {
        Command::Submit(args) => submit::run(addr, args).await,
        Command::Ls(args) => ls::run(addr, args).await,
        Command::Show(args) => show::run(addr, args).await,
        Command::Watch(args) => watch::run(addr, args).await,
        Command::Logs(args) => logs::run(addr, args).await,
        Command::Cancel(args) => cancel::run(addr, args).await,
        Command::Metrics(args) => metrics::run(addr, args).await,
        Command::Plugins(args) => plugins::run(addr, args).await,
        Command::Devices(args) => devices::run(addr, args).await,
        Command::Checkpoint(args) => checkpoint::run(addr, args).await,
        Command::Report(args) => report::run(addr, args).await,
        Command::Compare(args) => report::compare(addr, args).await,
        Command::Export(args) => export::run(addr, args).await,
        Command::Plot(args) => plot::run(addr, args).await,
        Command::Completions(args) => completions::run(args),
        Command::Login(args) => crate::login::login(addr, args).await,
        Command::Logout(args) => crate::login::logout(addr, args),
        Command::Whoami(args) => crate::login::whoami(addr, args).await,
        Command::Rm(args) => rm::run(addr, args).await,
    }
}

/// Writes to standard output; a closed pipe (`cauda ls | head`) is not an error.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Io {
            path: "<stdout>".into(),
            source: e,
        }),
    }
}

/// Pretty JSON followed by a newline: a generated message (or a list of them) in the proto3 JSON
/// mapping of `cauda-proto`'s serde, so scripts read the wire's own field names.
pub(crate) fn emit_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::BadReply(format!("cannot encode JSON: {e}")))?;
    emit(&format!("{text}\n"))
}
