//! Report rows for people and scripts: the survey's table layout (method, ratio, seeds, overall,
//! many/medium/few-shot top-1 in %, relative accuracy, throughput, GPU-hours) as aligned text,
//! Markdown or CSV, and JSON rows with the documented field names.

use cauda_proto::v1::{GetReportResponse, ReportRow};
use serde_json::{Value, json};

/// The table's columns.
pub const HEADERS: [&str; 12] = [
    "method",
    "ratio",
    "runs",
    "seeds",
    "top-1",
    "many",
    "medium",
    "few",
    "val-sel",
    "best-test*",
    "rel-acc",
    "img/s",
];

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{r}"))
}

/// One row's cells: top-1 as `mean ± std` in %, relative accuracy as a fraction.
pub fn cells(row: &ReportRow) -> Vec<String> {
    let top1 = match (row.top1_mean, row.top1_std) {
        (Some(m), Some(s)) if row.seeds > 1 => format!("{:.1} ± {:.1}", m * 100.0, s * 100.0),
        (Some(m), _) => format!("{:.1}", m * 100.0),
        _ => "-".into(),
    };
    let runs = if row.failed > 0 {
        format!("{} ({} failed)", row.runs, row.failed)
    } else if row.succeeded < row.runs {
        format!("{} ({} done)", row.runs, row.succeeded)
    } else {
        row.runs.to_string()
    };
    vec![
        row.method.clone(),
        ratio(row.ratio),
        runs,
        row.seeds.to_string(),
        top1,
        pct(row.many),
        pct(row.medium),
        pct(row.few),
        pct(row.val_selected_top1),
        pct(row.best_test_top1),
        row.relative_accuracy
            .map_or_else(|| "-".into(), |a| format!("{a:.3}")),
        row.images_per_sec
            .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
        format!("{:.2}", row.hours),
        format!("{:.2}", row.gpu_hours),
    ]
}

/// The footnote every rendering carries.
pub const NOTE: &str = "top-1 and many/medium/few: test accuracy (%) of the final model, mean ± sample std over seeds; \
val-sel: at the best validation epoch; best-test*: best test epoch, optimistic (picked on the test set); \
rel-acc: A_t / max(A_v, A_b) (Zhang et al. survey, Sec. 4.1); hours: wall-clock hours of the row's runs, \
GPU-h: those hours times the GPUs (or GPU share) each held.";

/// A Markdown table.
pub fn markdown(report: &GetReportResponse) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADERS.len())));
    for row in &report.rows {
        out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
    }
    out.push_str(&format!("\n{NOTE}\n"));
    out
}

/// CSV with raw fractions (empty for missing values).
pub fn csv(report: &GetReportResponse) -> String {
    let f = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    let mut out = String::from(
        "label,method,ratio,runs,succeeded,failed,seeds,top1_mean,top1_std,many,medium,few,val_selected_top1,best_test_top1,relative_accuracy,a_t,a_v,a_b,images_per_sec,hours,gpu_hours\n",
    );
    for r in &report.rows {
        let quoted = format!("\"{}\"", r.label.replace('"', "\"\""));
        let fields = [
            quoted,
            r.method.clone(),
            f(r.ratio),
            r.runs.to_string(),
            r.succeeded.to_string(),
            r.failed.to_string(),
            r.seeds.to_string(),
            f(r.top1_mean),
            f(r.top1_std),
            f(r.many),
            f(r.medium),
            f(r.few),
            f(r.val_selected_top1),
            f(r.best_test_top1),
            f(r.relative_accuracy),
            f(r.a_t),
            f(r.a_v),
            f(r.a_b),
            f(r.images_per_sec),
            r.hours.to_string(),
            r.gpu_hours.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// JSON rows: `method`, `ratio`, `seeds`, `top1_mean`, `top1_std`, `many`, `medium`, `few`,
/// `relative_accuracy`, and the rest of the row.
pub fn json_rows(report: &GetReportResponse) -> Value {
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|r| {
            json!({
                "label": r.label,
                "method": r.method,
                "ratio": r.ratio,
                "runs": r.runs,
                "succeeded": r.succeeded,
                "failed": r.failed,
                "seeds": r.seeds,
                "top1_mean": r.top1_mean,
                "top1_std": r.top1_std,
                "many": r.many,
                "medium": r.medium,
                "few": r.few,
                "val_selected_top1": r.val_selected_top1,
                "best_test_top1": r.best_test_top1,
                "relative_accuracy": r.relative_accuracy,
                "a_t": r.a_t,
                "a_v": r.a_v,
                "a_b": r.a_b,
                "images_per_sec": r.images_per_sec,
                "hours": r.hours,
                "gpu_hours": r.gpu_hours,
            })
        })
        .collect();
    json!({
        "experiment_id": report.experiment_id,
        "name": report.name,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> GetReportResponse {
        GetReportResponse {
            experiment_id: 3,
            name: "x".into(),
            rows: vec![ReportRow {
                label: "x/method=ce".into(),
                method: "ce".into(),
                ratio: Some(100.0),
                runs: 3,
                succeeded: 3,
                seeds: 3,
                top1_mean: Some(0.7123),
                top1_std: Some(0.0151),
                many: Some(0.9),
                few: Some(0.25),
                relative_accuracy: Some(0.8),
                ..ReportRow::default()
            }],
        }
    }

    #[test]
    fn renderings_carry_every_row_and_field() {
        let r = report();
        let c = cells(&r.rows[0]);
        assert_eq!(c[4], "71.2 ± 1.5");
        assert_eq!(
            (c[5].as_str(), c[6].as_str(), c[10].as_str()),
            ("90.0", "-", "0.800")
        );
        let md = markdown(&r);
        assert!(
            md.lines()
                .nth(2)
                .unwrap()
                .starts_with("| ce | 100 | 3 | 3 | 71.2 ± 1.5")
        );
        let csv = csv(&r);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"x/method=ce\",ce,100,3,3,0,3,0.7123,")
        );
        let j = json_rows(&r);
        let row = &j["rows"][0];
        for key in [
            "method",
            "ratio",
            "seeds",
            "top1_mean",
            "top1_std",
            "many",
            "medium",
            "few",
            "relative_accuracy",
        ] {
            assert!(row.get(key).is_some(), "{key}");
        }
        assert_eq!(row["top1_mean"], 0.7123);
        assert!(row["medium"].is_null());
    }
}
