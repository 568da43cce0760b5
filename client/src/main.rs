//! `cauda`, the command-line client of the cauda daemon (`caudad`). It links only the proto
//! crate and small CLI crates, never the training engine. Exit codes are documented in
//! [`exit`] and at the end of `cauda --help`.

mod cmd;
mod connect;
mod credentials;
mod download;
mod exit;
mod ids;
mod login;
mod output;
mod plot;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cauda: cannot start the async runtime: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cauda: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
