//! The report as text: aligned columns for a terminal (the default of `cauda report`, and what
//! `caudad demo` prints) and a Markdown table, both from [`crate::COLUMNS`]. [`aligned`] is also
//! the table of every other `cauda` listing (`ls`, `plugins`, `devices`, `compare`).

use cauda_proto::v1::GetReportResponse;

use crate::columns::{cells, headers, notes};
use crate::title;

/// Left-aligned columns separated by two spaces; the last column is not padded and no line
/// ends in spaces. A row with fewer cells than `headers` ends early.
pub fn aligned(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i != last {
                let pad = widths
                    .get(i)
                    .map_or(0, |w| w.saturating_sub(cell.chars().count()));
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// The default format: the title, the aligned table, the notes.
pub fn table_text(report: &GetReportResponse) -> String {
    let rows: Vec<Vec<String>> = report.rows.iter().map(cells).collect();
    format!(
        "{}\n{}\n{}\n",
        title(report),
        aligned(&headers(), &rows),
        notes(report)
    )
}

/// A Markdown cell: `|` escaped, so a method or label holding one keeps its row's columns.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A Markdown table (no title, for pasting under one), then the notes.
pub fn markdown(report: &GetReportResponse) -> String {
    let rows: Vec<Vec<String>> = report.rows.iter().map(cells).collect();
    markdown_table(&headers(), &rows, &notes(report))
}

/// `headers` and `rows` as a Markdown table, then `notes`.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>], notes: &str) -> String {
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| markdown_cell(c)).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header);
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for row in rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!("\n{notes}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::COLUMNS;
    use cauda_proto::v1::ReportRow;

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let text = aligned(
            &["a", "bb", "c"],
            &[
                vec!["xxx".into(), "y".into(), "z".into()],
                vec!["1".into(), "22".into(), "".into()],
            ],
        );
        assert_eq!(text, "a    bb  c\nxxx  y   z\n1    22\n");
    }

    #[test]
    fn a_bar_in_a_method_stays_in_its_markdown_cell() {
        let report = GetReportResponse {
            rows: vec![ReportRow {
                method: "a|b".into(),
                ..ReportRow::default()
            }],
            ..GetReportResponse::default()
        };
        let text = markdown(&report);
        let row = text.lines().nth(2).unwrap();
        assert!(row.starts_with("| a\\|b | "), "{row}");
        // Unescaped separators: one per column and one at the start.
        let bars = row.replace("\\|", "").matches('|').count();
        assert_eq!(bars, COLUMNS.len() + 1, "{row}");
    }
}
