//! `cauda compare E1 E2`: two experiments' reports side by side, rows matched by method and
//! imbalance ratio (and any other swept key, shown after the method), with the difference of their mean top-1 in points. Its columns are one list
//! too ([`COMPARE_COLUMNS`]), a header made from the two experiments' labels and a cell from
//! the matched pair of rows.

use cauda_proto::v1::{GetReportResponse, ReportRow};

use crate::columns::method_label;
use crate::experiment_label;
use crate::text::aligned;

/// One line of the comparison: a method (with any other swept key) and ratio, and its row in
/// each report (if any).
pub struct Pair<'a> {
    pub method: String,
    pub ratio: Option<f64>,
    pub first: Option<&'a ReportRow>,
    pub second: Option<&'a ReportRow>,
}

/// A column of the comparison: its header from the two experiments' labels (`e-1`, `e-2`)
/// and how a pair fills its cell.
pub struct CompareColumn {
    pub header: fn(&str, &str) -> String,
    pub cell: fn(&Pair) -> String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

fn rel(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn top1(row: Option<&ReportRow>) -> Option<f64> {
    row.and_then(|r| r.top1_mean)
}

/// The comparison's columns, in order.
pub const COMPARE_COLUMNS: &[CompareColumn] = &[
    CompareColumn {
        header: |_, _| "method".into(),
        cell: |p| p.method.clone(),
    },
    CompareColumn {
        header: |_, _| "ratio".into(),
        cell: |p| p.ratio.map_or_else(|| "-".into(), |r| format!("{r}")),
    },
    CompareColumn {
        header: |a, _| format!("top-1 {a}"),
        cell: |p| pct(top1(p.first)),
    },
    CompareColumn {
        header: |_, b| format!("top-1 {b}"),
        cell: |p| pct(top1(p.second)),
    },
    CompareColumn {
        header: |_, _| "delta".into(),
        cell: |p| match (top1(p.first), top1(p.second)) {
            (Some(x), Some(y)) => format!("{:+.1}", (y - x) * 100.0),
            _ => "-".into(),
        },
    },
    CompareColumn {
        header: |a, _| format!("few {a}"),
        cell: |p| pct(p.first.and_then(|r| r.few)),
    },
    CompareColumn {
        header: |_, b| format!("few {b}"),
        cell: |p| pct(p.second.and_then(|r| r.few)),
    },
    CompareColumn {
        header: |a, _| format!("rel-acc {a}"),
        cell: |p| rel(p.first.and_then(|r| r.relative_accuracy)),
    },
    CompareColumn {
        header: |_, b| format!("rel-acc {b}"),
        cell: |p| rel(p.second.and_then(|r| r.relative_accuracy)),
    },
];

/// The comparison's headers for experiments `first` and `second`.
pub fn compare_headers(first: u64, second: u64) -> Vec<String> {
    let (a, b) = (experiment_label(first), experiment_label(second));
    COMPARE_COLUMNS.iter().map(|c| (c.header)(&a, &b)).collect()
}

/// The pairs: every (method label, ratio) of either report, in order of first appearance.
fn pairs<'a>(a: &'a GetReportResponse, b: &'a GetReportResponse) -> Vec<Pair<'a>> {
    let mut keys: Vec<(String, Option<f64>)> = Vec::new();
    for row in a.rows.iter().chain(&b.rows) {
        let key = (method_label(row), row.ratio);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let find = |r: &'a GetReportResponse, (method, ratio): &(String, Option<f64>)| {
        r.rows
            .iter()
            .find(|row| method_label(row) == *method && row.ratio == *ratio)
    };
    keys.into_iter()
        .map(|key| Pair {
            first: find(a, &key),
            second: find(b, &key),
            method: key.0,
            ratio: key.1,
        })
        .collect()
}

/// The comparison as a terminal table under a `e-1 name vs e-2 name` title.
pub fn compare(a: &GetReportResponse, b: &GetReportResponse) -> String {
    let headers = compare_headers(a.experiment_id, b.experiment_id);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = pairs(a, b)
        .iter()
        .map(|p| COMPARE_COLUMNS.iter().map(|c| (c.cell)(p)).collect())
        .collect();
    format!(
        "{} {} vs {} {}\n{}",
        experiment_label(a.experiment_id),
        a.name,
        experiment_label(b.experiment_id),
        b.name,
        aligned(&headers, &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, ratio: Option<f64>, top1: f64) -> ReportRow {
        ReportRow {
            method: method.into(),
            ratio,
            top1_mean: Some(top1),
            ..ReportRow::default()
        }
    }

    #[test]
    fn rows_match_by_method_and_ratio_and_a_missing_side_is_a_dash() {
        let a = GetReportResponse {
            experiment_id: 1,
            name: "a".into(),
            rows: vec![row("ce", Some(10.0), 0.5), row("focal", Some(10.0), 0.6)],
            ..Default::default()
        };
        let b = GetReportResponse {
            experiment_id: 2,
            name: "b".into(),
            rows: vec![row("focal", Some(10.0), 0.65), row("ldam", None, 0.7)],
            ..Default::default()
        };
        let text = compare(&a, &b);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "e-1 a vs e-2 b");
        assert!(lines[1].starts_with("method  ratio  top-1 e-1  top-1 e-2  delta"));
        let cells = |l: &str| -> Vec<String> {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(cells(lines[2])[..5], ["ce", "10", "50.0", "-", "-"]);
        assert_eq!(
            cells(lines[3])[..5],
            ["focal", "10", "60.0", "65.0", "+5.0"]
        );
        assert_eq!(cells(lines[4])[..5], ["ldam", "-", "-", "70.0", "-"]);
        assert_eq!(lines.len(), 5);
    }
}
