//! The survey's table as ONE list of columns, each a header and the function that fills its
//! cell from a `ReportRow`, so the terminal table, Markdown and HTML cannot disagree on which
//! value sits under which header; and the footnotes every rendering carries.

use cauda_proto::v1::{GetReportResponse, ReportRow};

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

/// The grid keys a row's method and ratio columns already show.
const SHOWN_KEYS: [&str; 2] = ["method", "data.imbalance.ratio"];

/// The swept coordinates of a row besides method and ratio (`optimizer.lr=0.1`), from its
/// typed grid coordinates: what tells apart two rows of one method and ratio.
pub fn other_keys(row: &ReportRow) -> Vec<String> {
    row.coordinates
        .iter()
        .filter(|c| !SHOWN_KEYS.contains(&c.key.as_str()))
        .map(|c| format!("{}={}", c.key, c.value))
        .collect()
}

/// The method as the table shows it: `ce`, or `ce (optimizer.lr=0.1)` when the grid sweeps
/// other keys too, so no two rows read the same.
pub fn method_label(row: &ReportRow) -> String {
    let others = other_keys(row);
    if others.is_empty() {
        row.method.clone()
    } else {
        format!("{} ({})", row.method, others.join(","))
    }
}

/// The row's method (with its other swept keys), the first column of every report table.
pub const METHOD_COLUMN: Column = Column {
    header: "method",
    cell: method_label,
};

/// The training set's imbalance ratio.
pub const RATIO_COLUMN: Column = Column {
    header: "ratio",
    cell: |r| r.ratio.map_or_else(|| "-".into(), |v| format!("{v}")),
};

/// Distinct seeds among the row's succeeded runs.
pub const SEEDS_COLUMN: Column = Column {
    header: "seeds",
    cell: |r| r.seeds.to_string(),
};

/// The table's columns, in order.
pub const COLUMNS: &[Column] = &[
    METHOD_COLUMN,
    RATIO_COLUMN,
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
    SEEDS_COLUMN,
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
