//! `cauda report EXPERIMENT [--format table|markdown|csv|json|html] [--engine all|current]
//! [--table main|test-agnostic]`: the experiment's report (GetReport) in the survey's layout (or
//! SADE's test-agnostic table), rendered by `cauda-report` (the
//! renderer `caudad demo` prints with too); `cauda compare E1 E2` puts two reports side by side.

use cauda_proto::v1::{GetReportRequest, GetReportResponse};
use cauda_report::{Figure, current_engine_only, render, test_agnostic_table};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_experiment_id;

/// The output formats of `cauda report`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// A Markdown table (for papers' notes and READMEs).
    Markdown,
    /// One line per row with raw fractions, a column per `ReportRow` field.
    Csv,
    /// The GetReport reply in the proto3 JSON mapping: `{experiment_id, name, rows: [{label,
    /// method, ratio, runs, ..., top1_mean, top1_std, many, medium, few, ...}], engine}`.
    Json,
    /// One self-contained page (`--out DIR` gets `index.html`) with the table and both plots.
    Html,
}

impl From<Format> for cauda_report::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => Self::Table,
            Format::Markdown => Self::Markdown,
            Format::Csv => Self::Csv,
            Format::Json => Self::Json,
            Format::Html => Self::Html,
        }
    }
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

/// Which of the report's tables `cauda report` renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    /// The survey's table: top-1, many/medium/few, calibration, relative accuracy, cost.
    #[default]
    Main,
    /// SADE's test-agnostic table: top-1 on forward and backward long-tailed test sets at
    /// imbalance 50 to 2, and the uniform one (CSV and JSON hold these with every format).
    TestAgnostic,
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
    /// Which table: the survey's (`main`) or SADE's test-agnostic one (`test-agnostic`).
    #[arg(long, value_enum, default_value_t = Table::Main)]
    pub table: Table,
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

/// A report that cannot be rendered: the reply is at fault (or the build's descriptor set).
fn render_error(e: cauda_report::Error) -> CliError {
    CliError::BadReply(e.to_string())
}

/// Runs `cauda report`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut report = fetch(addr, args.experiment).await?;
    if args.engine == EngineFilter::Current {
        report = current_engine_only(report);
    }
    match (args.table, args.format) {
        (Table::Main, Format::Html) => html(addr, &report, args.out).await,
        (Table::Main, format) => {
            super::emit(&render(&report, format.into(), &[]).map_err(render_error)?)
        }
        (Table::TestAgnostic, Format::Html) => write_page(
            &test_agnostic_table(&report, cauda_report::Format::Html).map_err(render_error)?,
            args.out,
        ),
        (Table::TestAgnostic, format) => {
            super::emit(&test_agnostic_table(&report, format.into()).map_err(render_error)?)
        }
    }
}

/// Runs `cauda compare`: the rows of both reports, matched by method and ratio, with the
/// difference of their mean top-1 in points.
pub async fn compare(addr: &str, args: CompareArgs) -> Result<(), CliError> {
    let a = fetch(addr, args.first).await?;
    let b = fetch(addr, args.second).await?;
    super::emit(&cauda_report::compare(&a, &b))
}

/// The HTML page's figures: the per-class and accuracy-vs-epoch plots as SVG.
async fn figures(addr: &str, experiment: u64) -> Result<Vec<Figure>, CliError> {
    use crate::plot::gather::{Kind, gather};
    let mut client = connect(addr).await?;
    let mut figures = Vec::new();
    for (kind, caption) in [
        (
            Kind::PerClass,
            "Per-class test accuracy against the class's training images (log scale)",
        ),
        (Kind::Curves, "Test top-1 against epoch"),
    ] {
        let picture = gather(&mut client, addr, experiment, kind).await?;
        let svg = picture.svg().map_err(crate::plot::gather::plot_error)?;
        figures.push(Figure {
            caption: caption.to_string(),
            svg,
        });
    }
    Ok(figures)
}

/// Writes `DIR/index.html`: the table and the per-class and accuracy-vs-epoch plots, inline.
async fn html(
    addr: &str,
    report: &GetReportResponse,
    out: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let dir = out.ok_or_else(|| CliError::Usage("--format html needs --out DIR".into()))?;
    let figures = figures(addr, report.experiment_id).await?;
    write_page(&cauda_report::html(report, &figures), Some(dir))
}

/// Writes `page` as `DIR/index.html` (through a temporary file, so a reader never sees half).
fn write_page(page: &str, out: Option<std::path::PathBuf>) -> Result<(), CliError> {
    let dir = out.ok_or_else(|| CliError::Usage("--format html needs --out DIR".into()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{Panel, PlotData, Series, XAxis};

    #[test]
    fn a_real_plot_embeds_with_nothing_fetched() {
        let data = PlotData {
            title: "e-1 <x>".into(),
            x_axis: XAxis::Epoch,
            y_label: "test top-1 (%)".into(),
            panels: vec![Panel {
                title: String::new(),
                series: vec![Series {
                    method: "ce".into(),
                    runs: 1,
                    points: vec![(1.0, 0.2), (2.0, 0.4)],
                }],
            }],
        };
        let svg = crate::plot::Picture::Lines(data).svg().unwrap();
        let figure = Figure {
            caption: "curves".into(),
            svg,
        };
        let html = cauda_report::html(&GetReportResponse::default(), &[figure]);
        // The only URL is the SVG namespace, which names and fetches nothing.
        let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for external in ["http://", "https://", "href=", "src="] {
            assert!(!without_ns.contains(external), "{external}");
        }
        assert!(html.contains("<polyline"));
    }

    #[test]
    fn every_cli_format_is_a_renderer_format() {
        use clap::ValueEnum;
        let formats: Vec<cauda_report::Format> =
            Format::value_variants().iter().map(|&f| f.into()).collect();
        assert_eq!(formats, cauda_report::Format::ALL);
    }
}
