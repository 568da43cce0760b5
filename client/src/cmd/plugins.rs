//! `cauda plugins [--json]`: the daemon's plugin registry, for writing specs.

use cauda_proto::v1::ListPluginsRequest;

use crate::connect::connect;
use crate::exit::CliError;
use crate::output::{PLUGIN_HEADERS, plugin_row, table};

/// Arguments of `cauda plugins`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this family: sampler, loss, rebalance, augment or module.
    #[arg(long)]
    pub family: Option<String>,
    /// Print JSON (with each parameter's range and doc) instead of a table.
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
        return super::emit_json(&reply.plugins);
    }
    let rows: Vec<Vec<String>> = reply.plugins.iter().map(plugin_row).collect();
    let mut text = table(&PLUGIN_HEADERS, &rows);
    if !reply.backends.is_empty() {
        text.push_str(&format!(
            "\nbackends: {} (GPU runs default to {})\n",
            reply.backends.join(", "),
            reply.gpu_backend
        ));
    }
    super::emit(&text)
}
