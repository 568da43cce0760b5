//! `caudad plugins [--json]`: the registry describing itself (name, family, parameters with
//! defaults and ranges, doc line, paper) and the method presets, as the daemon's ListPlugins will.

use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::PresetBook;
use cauda_plugins::train::Backend;

#[derive(clap::Args)]
pub struct PluginsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PluginsArgs) -> anyhow::Result<()> {
    let plugins = builtin_registry().describe();
    let presets = PresetBook::builtin();
    if args.json {
        let presets: Vec<_> = presets.all().collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "plugins": plugins, "presets": presets, "backends": Backend::built() })
            )?
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
    }
    println!("\npresets:");
    for p in presets.all() {
        println!("  {:<22} {}", p.name, p.doc);
    }
    println!(
        "\nbackends built in: {} (GPU runs default to {}; docs/GPU.md)",
        Backend::built_list(),
        Backend::choose(None, true, None)
    );
    Ok(())
}
