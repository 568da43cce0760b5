//! Report rows for people and scripts, each from ONE list so a header and its cells cannot part:
//! [`COLUMNS`] is the survey's table (method, ratio, seeds, overall, many/medium/few-shot top-1
//! in %, top-5, worst class, ECE, relative accuracy, throughput, hours, engine) as aligned text, Markdown or HTML;
//! [`FIELDS`] are the raw values with their documented names, as CSV and as JSON rows.

use cauda_proto::v1::{GetReportResponse, ReportRow};
use serde_json::{Value, json};

use crate::ids::experiment_label;

/// A column of the report table: its header and how a row fills its cell.
pub struct Column {
    pub header: &'static str,
    pub cell: fn(&ReportRow) -> String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

/// `mean ± std` in % over two seeds or more, else the mean.
fn pct_std(mean: Option<f64>, std: Option<f64>, seeds: u32) -> String {
    match (mean, std) {
        (Some(m), Some(s)) if seeds > 1 => format!("{:.1} ± {:.1}", m * 100.0, s * 100.0),
        (Some(m), _) => format!("{:.1}", m * 100.0),
        _ => "-".into(),
    }
}

/// The table's columns, in order.
pub const COLUMNS: &[Column] = &[
    Column {
        header: "method",
        cell: |r| r.method.clone(),
    },
    Column {
        header: "ratio",
        cell: |r| r.ratio.map_or_else(|| "-".into(), |v| format!("{v}")),
    },
    Column {
        header: "runs",
        cell: |r| {
            if r.failed > 0 {
                format!("{} ({} failed)", r.runs, r.failed)
            } else if r.succeeded < r.runs {
                format!("{} ({} done)", r.runs, r.succeeded)
            } else {
                r.runs.to_string()
            }
        },
    },
    Column {
        header: "seeds",
        cell: |r| r.seeds.to_string(),
    },
    Column {
        header: "top-1",
        // `mean ± std` in % over two seeds or more.
        cell: |r| pct_std(r.top1_mean, r.top1_std, r.seeds),
    },
    Column {
        header: "top-5",
        cell: |r| pct(r.top5_mean),
    },
    Column {
        header: "many",
        cell: |r| pct_std(r.many, r.many_std, r.seeds),
    },
    Column {
        header: "medium",
        cell: |r| pct_std(r.medium, r.medium_std, r.seeds),
    },
    Column {
        header: "few",
        cell: |r| pct_std(r.few, r.few_std, r.seeds),
    },
    Column {
        header: "worst",
        cell: |r| pct(r.worst_class),
    },
    Column {
        header: "ECE",
        cell: |r| pct(r.ece),
    },
    Column {
        header: "val-sel",
        cell: |r| pct(r.val_selected_top1),
    },
    Column {
        header: "best-test*",
        cell: |r| pct(r.best_test_top1),
    },
    Column {
        header: "rel-acc",
        cell: |r| {
            r.relative_accuracy
                .map_or_else(|| "-".into(), |a| format!("{a:.3}"))
        },
    },
    Column {
        header: "img/s",
        cell: |r| {
            r.images_per_sec
                .map_or_else(|| "-".into(), |v| format!("{v:.0}"))
        },
    },
    Column {
        header: "hours",
        cell: |r| format!("{:.2}", r.hours),
    },
    Column {
        header: "GPU-h",
        cell: |r| format!("{:.2}", r.gpu_hours),
    },
    Column {
        header: "engine",
        cell: |r| if r.older_engine { "older" } else { "current" }.into(),
    },
];

/// The table's headers.
pub fn headers() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.header).collect()
}

/// One row's cells, one per column.
pub fn cells(row: &ReportRow) -> Vec<String> {
    COLUMNS.iter().map(|c| (c.cell)(row)).collect()
}

/// The footnote every rendering carries.
pub const NOTE: &str = "top-1 and many/medium/few: test accuracy (%) of the final model, mean ± sample std over seeds; \
top-5: mean test top-5 (%), for more than 5 classes; worst: the lowest per-class accuracy (%); \
ECE: expected calibration error (%, 15 bins, Guo et al. 2017), for runs whose logits cauda saw; \
val-sel: at the best validation epoch; best-test*: best test epoch, optimistic (picked on the test set); \
rel-acc: A_t / max(A_v, A_b) (Zhang et al. survey, Sec. 4.1); hours: wall-clock hours of the row's runs, \
GPU-h: those hours times the GPUs (or GPU share) each held.";

/// The footnotes of a report: [`NOTE`] and what the engine column compares with.
pub fn notes(report: &GetReportResponse) -> String {
    let engine = if report.engine.is_empty() {
        "not reported by this daemon"
    } else {
        report.engine.as_str()
    };
    format!(
        "{NOTE}\nengine: older = some run of the row was trained by another engine than the daemon's ({engine}); `--engine current` leaves those rows out."
    )
}

/// The report without the rows that an older engine trained (`--engine current`).
pub fn current_engine_only(mut report: GetReportResponse) -> GetReportResponse {
    report.rows.retain(|r| !r.older_engine);
    report
}

/// The title of a report: `e-3 fmnist-lt`.
fn title(report: &GetReportResponse) -> String {
    format!("{} {}", experiment_label(report.experiment_id), report.name)
}

/// Aligned columns for a terminal (the default format).
pub fn table_text(report: &GetReportResponse) -> String {
    let rows: Vec<Vec<String>> = report.rows.iter().map(cells).collect();
    format!(
        "{}\n{}\n{}\n",
        title(report),
        crate::output::table(&headers(), &rows),
        notes(report)
    )
}

/// A Markdown table.
pub fn markdown(report: &GetReportResponse) -> String {
    let mut out = format!("| {} |\n", headers().join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(COLUMNS.len())));
    for row in &report.rows {
        out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
    }
    out.push_str(&format!("\n{}\n", notes(report)));
    out
}

/// The HTML page: the table, then each `(caption, svg)` figure, then the notes.
pub fn html(report: &GetReportResponse, figures: &[(String, String)]) -> String {
    let headers: Vec<String> = headers().into_iter().map(String::from).collect();
    let rows: Vec<Vec<String>> = report.rows.iter().map(cells).collect();
    let page = crate::report::html::html_page(&title(report), &headers, &rows, figures);
    let notes: Vec<String> = notes(report)
        .lines()
        .map(|l| format!("<p>{}</p>", crate::report::html::escape(l)))
        .collect();
    page.replace("</body>", &format!("{}\n</body>", notes.join("\n")))
}

/// A raw value of a CSV and JSON row: its name (CSV header, JSON key) and its value.
pub struct Field {
    pub name: &'static str,
    pub value: fn(&ReportRow) -> Value,
}

/// The CSV and JSON rows' fields, in order: accuracies as fractions, missing values null.
pub const FIELDS: &[Field] = &[
    Field {
        name: "label",
        value: |r| json!(r.label),
    },
    Field {
        name: "method",
        value: |r| json!(r.method),
    },
    Field {
        name: "ratio",
        value: |r| json!(r.ratio),
    },
    Field {
        name: "runs",
        value: |r| json!(r.runs),
    },
    Field {
        name: "succeeded",
        value: |r| json!(r.succeeded),
    },
    Field {
        name: "failed",
        value: |r| json!(r.failed),
    },
    Field {
        name: "seeds",
        value: |r| json!(r.seeds),
    },
    Field {
        name: "top1_mean",
        value: |r| json!(r.top1_mean),
    },
    Field {
        name: "top1_std",
        value: |r| json!(r.top1_std),
    },
    Field {
        name: "top5_mean",
        value: |r| json!(r.top5_mean),
    },
    Field {
        name: "many",
        value: |r| json!(r.many),
    },
    Field {
        name: "medium",
        value: |r| json!(r.medium),
    },
    Field {
        name: "few",
        value: |r| json!(r.few),
    },
    Field {
        name: "many_std",
        value: |r| json!(r.many_std),
    },
    Field {
        name: "medium_std",
        value: |r| json!(r.medium_std),
    },
    Field {
        name: "few_std",
        value: |r| json!(r.few_std),
    },
    Field {
        name: "worst_class",
        value: |r| json!(r.worst_class),
    },
    Field {
        name: "ece",
        value: |r| json!(r.ece),
    },
    Field {
        name: "nll",
        value: |r| json!(r.nll),
    },
    Field {
        name: "val_selected_top1",
        value: |r| json!(r.val_selected_top1),
    },
    Field {
        name: "best_test_top1",
        value: |r| json!(r.best_test_top1),
    },
    Field {
        name: "relative_accuracy",
        value: |r| json!(r.relative_accuracy),
    },
    Field {
        name: "a_t",
        value: |r| json!(r.a_t),
    },
    Field {
        name: "a_v",
        value: |r| json!(r.a_v),
    },
    Field {
        name: "a_b",
        value: |r| json!(r.a_b),
    },
    Field {
        name: "images_per_sec",
        value: |r| json!(r.images_per_sec),
    },
    Field {
        name: "hours",
        value: |r| json!(r.hours),
    },
    Field {
        name: "gpu_hours",
        value: |r| json!(r.gpu_hours),
    },
    Field {
        name: "engines",
        value: |r| json!(r.engines),
    },
    Field {
        name: "older_engine",
        value: |r| json!(r.older_engine),
    },
];

/// A value as one CSV cell: empty for null, numbers as Rust prints them (`100`, `0.7123`),
/// text quoted (RFC 4180), a list of texts joined by `; ` and quoted.
fn csv_cell(value: &Value) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect();
            quote(&items.join("; "))
        }
        Value::Object(_) => quote(&value.to_string()),
    }
}

/// CSV: a header line of [`FIELDS`]' names, then one line per row.
pub fn csv(report: &GetReportResponse) -> String {
    let names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    let mut out = format!("{}\n", names.join(","));
    for row in &report.rows {
        let cells: Vec<String> = FIELDS.iter().map(|f| csv_cell(&(f.value)(row))).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// JSON: `{experiment_id, name, engine, rows: [{label, method, ratio, ...}]}`, each row an
/// object of [`FIELDS`].
pub fn json_rows(report: &GetReportResponse) -> Value {
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            let fields = FIELDS
                .iter()
                .map(|f| (f.name.to_string(), (f.value)(row)))
                .collect();
            Value::Object(fields)
        })
        .collect();
    json!({
        "experiment_id": report.experiment_id,
        "name": report.name,
        "engine": report.engine,
        "rows": rows,
    })
}

#[cfg(test)]
#[path = "report_rows_test.rs"]
mod tests;
