//! `caudad plugins [--json]`: the engine's registry describing itself (name, family, parameters
//! with defaults and ranges, doc line, paper, and the crate of a plugin from outside cauda) and
//! its method presets, as the daemon's ListPlugins will.

use cauda_plugins::train::Backend;

use crate::engine::Engine;

#[derive(clap::Args)]
pub struct PluginsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PluginsArgs, engine: &Engine) -> anyhow::Result<()> {
    let plugins = engine.registry().describe();
    let presets = engine.presets();
    if args.json {
        let presets: Vec<_> = presets.all().collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "engine": engine.fingerprint(),
                "plugins": plugins,
                "presets": presets,
                "backends": Backend::built(),
            }))?
        );
        return Ok(());
    }
    for p in &plugins {
        let params: Vec<String> = p
            .params
            .iter()
            .map(|s| format!("{}={} [{}..={}]", s.name, s.default, s.min, s.max))
            .collect();
        println!(
            "{:<10} {:<24} {}",
            format!("{:?}", p.family).to_lowercase(),
            p.name,
            p.doc
        );
        if !params.is_empty() {
            println!("{:<35} params: {}", "", params.join(", "));
        }
        println!("{:<35} paper: {}", "", p.paper);
        if let Some(origin) = p.origin {
            println!("{:<35} from: {origin}", "");
        }
    }
    println!("\npresets:");
    for p in presets.all() {
        println!("  {:<22} {}", p.name, p.doc);
    }
    println!("\nengine: {}", engine.fingerprint());
    println!(
        "backends built in: {} (GPU runs default to {}; docs/GPU.md)",
        Backend::built_list(),
        Backend::choose(None, true, None)
    );
    Ok(())
}
