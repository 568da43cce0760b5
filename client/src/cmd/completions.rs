//! `cauda completions SHELL`: prints a completion script (clap_complete) for bash, zsh, fish,
//! elvish or PowerShell.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::exit::CliError;

/// Arguments of `cauda completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Runs `cauda completions`.
pub fn run(args: Args) -> Result<(), CliError> {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "cauda", &mut script);
    super::emit(&String::from_utf8_lossy(&script))
}
