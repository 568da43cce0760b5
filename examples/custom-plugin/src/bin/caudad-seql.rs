//! `caudad-seql`: cauda's daemon with this crate's plugins and presets. Every subcommand of
//! `caudad` works (`serve`, `train`, `plugins`, `demo`, ...); the daemon spawns this binary
//! for its workers, so they build the same plugins.

fn main() -> anyhow::Result<std::process::ExitCode> {
    caudad::cli::main_with(cauda_custom_plugin::engine()?)
}
