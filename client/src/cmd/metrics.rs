//! `cauda metrics RUN [--format csv|json]`: every stored epoch of a run (GetMetrics), as CSV
//! for spreadsheets and plots or as JSON with per-class accuracies and the summary.

use cauda_proto::v1::GetMetricsRequest;

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_run_id;
use crate::output::{METRICS_CSV_HEADER, metrics_csv_row};

/// The output formats of `cauda metrics`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// stage,epoch,train_loss,lr,images_per_sec,test_top1,many,medium,few,val_top1
    #[default]
    Csv,
    /// The GetMetrics reply: `{epochs: [...], summary_json}` (per-class accuracies, null for a
    /// class without test images).
    Json,
}

/// Arguments of `cauda metrics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

/// Runs `cauda metrics`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let reply = client
        .get_metrics(GetMetricsRequest { run_id: args.run })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    match args.format {
        Format::Json => super::emit_json(&reply),
        Format::Csv => {
            let mut text = format!("{METRICS_CSV_HEADER}\n");
            for epoch in &reply.epochs {
                text.push_str(&metrics_csv_row(epoch));
                text.push('\n');
            }
            super::emit(&text)
        }
    }
}
