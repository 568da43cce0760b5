//! `caudad work`: one attempt of one run, started by the daemon's executor (not by users).
//! Exit codes: 0 finished (the outcome is stored), 1 failed, 3 stopped by the daemon, 4 the
//! daemon could not be reached.

use std::time::Duration;

use crate::engine::Engine;
use crate::worker::{self, WorkerArgs};

#[derive(clap::Args)]
pub struct WorkArgs {
    /// The daemon's worker address, e.g. http://127.0.0.1:50051 (https:// for a TLS daemon,
    /// verified with $CAUDA_CA_CERT, else the system roots).
    #[arg(long)]
    daemon: String,
    /// The run's numeric id.
    #[arg(long)]
    run: u64,
    /// The attempt this process runs.
    #[arg(long)]
    attempt: u32,
    /// Seconds to keep retrying while the daemon is unreachable before giving up.
    #[arg(long, default_value_t = 10)]
    patience_secs: u64,
}

pub fn run(args: WorkArgs, engine: &Engine) -> std::process::ExitCode {
    let span = tracing::info_span!("work", run_id = args.run, attempt = args.attempt);
    let _enter = span.enter();
    let result = worker::run(
        &WorkerArgs {
            daemon_url: args.daemon,
            run: args.run,
            attempt: args.attempt,
            patience: Duration::from_secs(args.patience_secs),
            // From the environment, never the command line (where `ps` would show it).
            token: std::env::var(crate::executor::WORKER_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty()),
            ca_cert: std::env::var_os(crate::grpc::tls::CA_ENV)
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from),
            tls_server_name: std::env::var(crate::grpc::tls::SERVER_NAME_ENV)
                .ok()
                .filter(|n| !n.is_empty()),
        },
        engine.registry(),
    );
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caudad work: {e}");
            std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
