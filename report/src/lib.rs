//! One renderer for an experiment's report, so `cauda report` (every `--format`), `cauda
//! compare`, the HTML page and `caudad demo` print the same thing from the same `GetReport`
//! reply. Pure functions from proto messages to text: the client links it without Burn, the
//! daemon without the client.
//!
//! The survey's table ([`COLUMNS`]: headers and cells from one list) is rendered as aligned
//! text, Markdown and HTML; the raw values are the generated `ReportRow`'s own serde (the
//! proto3 JSON mapping), as JSON and as CSV whose columns are `ReportRow`'s fields in `.proto`
//! order, so a new proto field reaches both without a hand-kept list. SADE's test-agnostic
//! accuracies have a table of their own ([`test_agnostic_table`]).

mod columns;
mod compare;
mod fields;
pub mod html;
mod test_agnostic;
mod text;

use cauda_proto::v1::GetReportResponse;

pub use columns::{
    COLUMNS, Column, NOTE, cells, current_engine_only, headers, method_label, notes, other_keys,
};
pub use compare::{COMPARE_COLUMNS, CompareColumn, Pair, compare, compare_headers};
pub use fields::{csv, csv_fields, json};
pub use html::html;
pub use test_agnostic::{
    TEST_AGNOSTIC_COLUMNS, TEST_AGNOSTIC_NOTE, test_agnostic_cells, test_agnostic_table,
};
pub use text::{aligned, markdown, markdown_table, table_text};

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generated types could not be written as JSON.
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The embedded descriptor set lacks a message this crate reads (a broken build).
    #[error("the cauda.v1 descriptor set has no message {0}")]
    Descriptor(&'static str),
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;

/// The formats a report renders in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal, the title above and the notes below.
    Table,
    /// A Markdown table and the notes.
    Markdown,
    /// One line per row of raw values (fractions, hours), `ReportRow`'s fields as columns.
    Csv,
    /// The `GetReport` reply in the proto3 JSON mapping, pretty-printed.
    Json,
    /// One self-contained page: the table, the figures, the notes.
    Html,
}

impl Format {
    /// Every format, in the order `cauda report --help` lists them.
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Markdown,
        Format::Csv,
        Format::Json,
        Format::Html,
    ];
}

/// A figure of the HTML page: its caption and an SVG document (inlined as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub caption: String,
    pub svg: String,
}

/// `report` in `format`; only the HTML page shows `figures`.
pub fn render(report: &GetReportResponse, format: Format, figures: &[Figure]) -> Result<String> {
    Ok(match format {
        Format::Table => table_text(report),
        Format::Markdown => markdown(report),
        Format::Csv => csv(report)?,
        Format::Json => json(report)?,
        Format::Html => html(report, figures),
    })
}

/// An experiment id as people read it: `e-3`.
pub fn experiment_label(id: u64) -> String {
    format!("e-{id}")
}

/// The title of a report: `e-3 fmnist-lt`.
pub fn title(report: &GetReportResponse) -> String {
    format!("{} {}", experiment_label(report.experiment_id), report.name)
}
