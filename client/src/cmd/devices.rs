//! `cauda devices [--json]`: the daemon's devices, their memory and load, and the runs on them.

use cauda_proto::v1::ListDevicesRequest;

use crate::connect::connect;
use crate::exit::CliError;
use crate::output::{DEVICE_HEADERS, device_row, table};

/// Arguments of `cauda devices`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cauda devices`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let reply = client
        .list_devices(ListDevicesRequest {})
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    if args.json {
        return super::emit_json(&reply.devices);
    }
    let rows: Vec<Vec<String>> = reply.devices.iter().map(device_row).collect();
    super::emit(&table(&DEVICE_HEADERS, &rows))
}
