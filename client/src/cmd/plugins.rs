//! `cauda plugins [--json]`: the daemon's plugin registry, for writing specs.

use cauda_proto::v1::ListPluginsRequest;

use crate::connect::connect;
use crate::exit::CliError;
use crate::output::{METHOD_HEADERS, PLUGIN_HEADERS, method_row, plugin_row, table};

/// Arguments of `cauda plugins`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only plugins of this family (sampler, loss, rebalance, augment or module), or only
    /// methods of this survey family or sub-family (e.g. class-re-balancing, logit-adjustment).
    #[arg(long)]
    pub family: Option<String>,
    /// Print JSON (plugins with each parameter's range and doc, then methods) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cauda plugins`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let reply = client
        .list_plugins(ListPluginsRequest {
            family: args.family.unwrap_or_default(),
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    if args.json {
        return super::emit_json(&serde_json::json!({
            "plugins": reply.plugins,
            "methods": reply.methods,
        }));
    }
    let rows: Vec<Vec<String>> = reply.plugins.iter().map(plugin_row).collect();
    let mut text = String::new();
    if !rows.is_empty() {
        text.push_str(&table(&PLUGIN_HEADERS, &rows));
    }
    if !reply.methods.is_empty() {
        let rows: Vec<Vec<String>> = reply.methods.iter().map(method_row).collect();
        text.push_str(&format!("\nmethods ({}):\n", rows.len()));
        text.push_str(&table(&METHOD_HEADERS, &rows));
    }
    if !reply.backends.is_empty() {
        text.push_str(&format!(
            "\nbackends: {} (GPU runs default to {})\n",
            reply.backends.join(", "),
            reply.gpu_backend
        ));
    }
    super::emit(&text)
}
