//! `cauda report EXPERIMENT [--format table|markdown|csv|json|html] [--engine all|current]`: the
//! experiment's report (GetReport) in the survey's layout, rendered by `report_rows`; `cauda
//! compare E1 E2` puts two reports side by side.

use cauda_proto::v1::{GetReportRequest, GetReportResponse};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{experiment_label, parse_experiment_id};
use crate::output::table;
use crate::report_rows::{csv, current_engine_only, json_rows, markdown, table_text};

/// The output formats of `cauda report`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// A Markdown table (for papers' notes and READMEs).
    Markdown,
    /// One line per row with raw fractions.
    Csv,
    /// `{experiment_id, name, engine, rows: [{method, ratio, seeds, top1_mean, top1_std, many,
    /// medium, few, relative_accuracy, ..., engines, older_engine}]}`.
    Json,
    /// One self-contained page (`--out DIR` gets `index.html`) with the table and both plots.
    Html,
}

/// Which rows `cauda report` shows, by the engine that trained them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineFilter {
    /// Every row; those an older engine trained are marked `older`.
    #[default]
    All,
    /// Only rows trained by the daemon's current engine.
    Current,
}

/// Arguments of `cauda report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment (`e-3` or `3`).
    #[arg(value_parser = parse_experiment_id)]
    pub experiment: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The folder `--format html` writes `index.html` into.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Which rows to show by the engine that trained them: `current` leaves out the rows of an
    /// older engine (another crate version or recipe).
    #[arg(long, value_enum, default_value_t = EngineFilter::All)]
    pub engine: EngineFilter,
}

/// Arguments of `cauda compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The first experiment.
    #[arg(value_parser = parse_experiment_id)]
    pub first: u64,
    /// The second experiment.
    #[arg(value_parser = parse_experiment_id)]
    pub second: u64,
}

pub(crate) async fn fetch(addr: &str, id: u64) -> Result<GetReportResponse, CliError> {
    let mut client = connect(addr).await?;
    Ok(client
        .get_report(GetReportRequest { experiment_id: id })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner())
}

/// Runs `cauda report`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut report = fetch(addr, args.experiment).await?;
    if args.engine == EngineFilter::Current {
        report = current_engine_only(report);
    }
    match args.format {
        Format::Json => super::emit_json(&json_rows(&report)),
        Format::Csv => super::emit(&csv(&report)),
        Format::Markdown => super::emit(&markdown(&report)),
        Format::Html => html(addr, &report, args.out).await,
        Format::Table => super::emit(&table_text(&report)),
    }
}

/// Runs `cauda compare`: the rows of both reports, matched by method and ratio, with the
/// difference of their mean top-1 in points.
pub async fn compare(addr: &str, args: CompareArgs) -> Result<(), CliError> {
    let a = fetch(addr, args.first).await?;
    let b = fetch(addr, args.second).await?;
    let (la, lb) = (
        experiment_label(a.experiment_id),
        experiment_label(b.experiment_id),
    );
    let pct = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0));
    let rel = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
    let mut keys: Vec<(String, Option<f64>)> = Vec::new();
    for row in a.rows.iter().chain(&b.rows) {
        let key = (row.method.clone(), row.ratio);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let find = |r: &GetReportResponse, key: &(String, Option<f64>)| {
        r.rows
            .iter()
            .find(|row| row.method == key.0 && row.ratio == key.1)
            .cloned()
    };
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let (x, y) = (find(&a, key), find(&b, key));
            let top = |r: &Option<cauda_proto::v1::ReportRow>| r.as_ref().and_then(|r| r.top1_mean);
            let few = |r: &Option<cauda_proto::v1::ReportRow>| r.as_ref().and_then(|r| r.few);
            let ra = |r: &Option<cauda_proto::v1::ReportRow>| {
                r.as_ref().and_then(|r| r.relative_accuracy)
            };
            let delta = match (top(&x), top(&y)) {
                (Some(p), Some(q)) => format!("{:+.1}", (q - p) * 100.0),
                _ => "-".into(),
            };
            vec![
                key.0.clone(),
                key.1.map_or_else(|| "-".into(), |r| format!("{r}")),
                pct(top(&x)),
                pct(top(&y)),
                delta,
                pct(few(&x)),
                pct(few(&y)),
                rel(ra(&x)),
                rel(ra(&y)),
            ]
        })
        .collect();
    let headers = [
        "method".to_string(),
        "ratio".into(),
        format!("top-1 {la}"),
        format!("top-1 {lb}"),
        "delta".into(),
        format!("few {la}"),
        format!("few {lb}"),
        format!("rel-acc {la}"),
        format!("rel-acc {lb}"),
    ];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    super::emit(&format!(
        "{la} {} vs {lb} {}\n{}",
        a.name,
        b.name,
        table(&headers, &rows)
    ))
}

/// Writes `DIR/index.html`: the table and the per-class and accuracy-vs-epoch plots, inline.
async fn html(
    addr: &str,
    report: &GetReportResponse,
    out: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    use crate::plot::gather::{Kind, gather};
    let dir = out.ok_or_else(|| CliError::Usage("--format html needs --out DIR".into()))?;
    let mut client = connect(addr).await?;
    let mut figures = Vec::new();
    for (kind, caption) in [
        (
            Kind::PerClass,
            "Per-class test accuracy against the class's training images (log scale)",
        ),
        (Kind::Curves, "Test top-1 against epoch"),
    ] {
        let data = gather(&mut client, addr, report.experiment_id, kind).await?;
        let svg = crate::plot::svg(&data).map_err(crate::plot::gather::plot_error)?;
        figures.push((caption.to_string(), svg));
    }
    let page = crate::report_rows::html(report, &figures);
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let file = dir.join("index.html");
    let tmp = dir.join(".index.html.tmp");
    std::fs::write(&tmp, page).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &file).map_err(io(&file))?;
    super::emit(&format!("wrote {}\n", file.display()))
}
