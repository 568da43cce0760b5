//! `caudad`: cauda's daemon binary, with cauda's own plugins and presets. A crate that adds
//! its own builds the same binary around its engine (`caudad::cli`, `examples/custom-plugin/`).

fn main() -> anyhow::Result<std::process::ExitCode> {
    caudad::cli::main_with(caudad::Engine::builtin())
}
