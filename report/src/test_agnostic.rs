//! The test-agnostic table (SADE, NeurIPS 2022): one row per configuration, its mean top-1 on
//! forward long-tailed test sets (imbalance 50 to 2), the uniform one and backward ones (2 to
//! 50), and how they were measured (the fixed model's expectation, or SADE's test-time
//! self-supervised aggregation), as `cauda report --table test-agnostic` prints it in the text
//! formats. The values are `ReportRow`'s own fields, so CSV and JSON carry them with the main
//! table's.

use cauda_proto::v1::{GetReportResponse, ReportRow};

use crate::columns::{Column, METHOD_COLUMN, RATIO_COLUMN, SEEDS_COLUMN};
use crate::html::page;
use crate::text::{aligned, markdown_table};
use crate::{Format, Result, title};

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

/// The table's columns: the row's method, ratio and seeds, SADE's eleven test sets in its
/// tables' order, then the basis of the row's figures.
pub const TEST_AGNOSTIC_COLUMNS: &[Column] = &[
    METHOD_COLUMN,
    RATIO_COLUMN,
    SEEDS_COLUMN,
    Column {
        header: "fwd-50",
        cell: |r| pct(r.forward_50),
    },
    Column {
        header: "fwd-25",
        cell: |r| pct(r.forward_25),
    },
    Column {
        header: "fwd-10",
        cell: |r| pct(r.forward_10),
    },
    Column {
        header: "fwd-5",
        cell: |r| pct(r.forward_5),
    },
    Column {
        header: "fwd-2",
        cell: |r| pct(r.forward_2),
    },
    Column {
        header: "uniform",
        cell: |r| pct(r.uniform),
    },
    Column {
        header: "bwd-2",
        cell: |r| pct(r.backward_2),
    },
    Column {
        header: "bwd-5",
        cell: |r| pct(r.backward_5),
    },
    Column {
        header: "bwd-10",
        cell: |r| pct(r.backward_10),
    },
    Column {
        header: "bwd-25",
        cell: |r| pct(r.backward_25),
    },
    Column {
        header: "bwd-50",
        cell: |r| pct(r.backward_50),
    },
    Column {
        header: "basis",
        cell: |r| {
            if r.test_agnostic_aggregated {
                "aggregation".into()
            } else {
                "expectation".into()
            }
        },
    },
];

/// The footnote of the test-agnostic table.
pub const TEST_AGNOSTIC_NOTE: &str = "test-agnostic evaluation (Zhang et al., SADE, NeurIPS 2022): mean top-1 (%) of the final model over seeds \
on test sets whose classes follow their own long tail, fwd-r: forward (the training set's head stays the head) at imbalance r, \
bwd-r: backward (reversed), uniform: the balanced test set. basis expectation: the fixed model's class accuracies weighted as such a set \
holds them, the i-th most frequent training class by r^(-i/(C-1)) (SADE keeps int(n_max r^(-i/(C-1))) random test images of it: \
the same in expectation, up to that rounding). basis aggregation: SADE's test-time self-supervised aggregation \
(evaluation.test_time_aggregation): each run drew such sets from its seed, learned its experts' weights on each set's unlabeled \
images and was scored on those images with them.";

fn rows(report: &GetReportResponse) -> Vec<Vec<String>> {
    report.rows.iter().map(test_agnostic_cells).collect()
}

/// One row's cells under [`TEST_AGNOSTIC_COLUMNS`].
pub fn test_agnostic_cells(row: &ReportRow) -> Vec<String> {
    TEST_AGNOSTIC_COLUMNS
        .iter()
        .map(|c| (c.cell)(row))
        .collect()
}

/// The test-agnostic table in `format`: aligned text (title, table, note), Markdown or an HTML
/// page; CSV and JSON are the whole report's, which holds these fields.
pub fn test_agnostic_table(report: &GetReportResponse, format: Format) -> Result<String> {
    let headers: Vec<&str> = TEST_AGNOSTIC_COLUMNS.iter().map(|c| c.header).collect();
    Ok(match format {
        Format::Table => format!(
            "{}\n{}\n{TEST_AGNOSTIC_NOTE}\n",
            title(report),
            aligned(&headers, &rows(report))
        ),
        Format::Markdown => markdown_table(&headers, &rows(report), TEST_AGNOSTIC_NOTE),
        Format::Html => page(
            &title(report),
            &headers,
            &rows(report),
            &[],
            TEST_AGNOSTIC_NOTE,
        ),
        Format::Csv | Format::Json => crate::render(report, format, &[])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_shows_its_own_field() {
        let row = ReportRow {
            method: "sade".into(),
            ratio: Some(100.0),
            seeds: 4,
            forward_50: Some(0.50),
            forward_25: Some(0.51),
            forward_10: Some(0.52),
            forward_5: Some(0.53),
            forward_2: Some(0.54),
            uniform: Some(0.55),
            backward_2: Some(0.56),
            backward_5: Some(0.57),
            backward_10: Some(0.58),
            backward_25: Some(0.59),
            backward_50: None,
            ..ReportRow::default()
        };
        assert_eq!(
            test_agnostic_cells(&row),
            [
                "sade",
                "100",
                "4",
                "50.0",
                "51.0",
                "52.0",
                "53.0",
                "54.0",
                "55.0",
                "56.0",
                "57.0",
                "58.0",
                "59.0",
                "-",
                "expectation"
            ]
        );
        let aggregated = ReportRow {
            test_agnostic_aggregated: true,
            ..row.clone()
        };
        assert_eq!(test_agnostic_cells(&aggregated)[14], "aggregation");
        let report = GetReportResponse {
            experiment_id: 3,
            name: "x".into(),
            rows: vec![row],
            engine: String::new(),
        };
        let text = test_agnostic_table(&report, Format::Table).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "e-3 x");
        assert!(
            lines[1].starts_with("method  ratio  seeds  fwd-50"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("bwd-50  basis"), "{}", lines[1]);
        assert!(
            lines[2].starts_with("sade    100    4      50.0"),
            "{}",
            lines[2]
        );
        let md = test_agnostic_table(&report, Format::Markdown).unwrap();
        assert_eq!(md.lines().nth(1).unwrap().matches("---|").count(), 15);
        let csv = test_agnostic_table(&report, Format::Csv).unwrap();
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with("backward_25,backward_50,test_agnostic_aggregated"),
            "{csv}"
        );
    }
}
