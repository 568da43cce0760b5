//! The helpers of `render_test`: golden files (`CAUDA_BLESS=1` rewrites them), reading the
//! CLI's tables back cell by cell, and normalizing exactly what varies between runs (times,
//! throughput; the engine fingerprint is replaced by the test) before a comparison.

use std::path::{Path, PathBuf};

use cauda_proto::v1::{GetReportResponse, ReportRow};

/// Replaces a value that varies between runs (time, throughput).
pub const VARIES: &str = "<varies>";
/// Replaces the daemon's engine fingerprint.
pub const ENGINE: &str = "<engine>";

/// The table columns whose cells are times or throughput.
pub const TABLE_VARYING: [&str; 3] = ["img/s", "hours", "GPU-h"];
/// The same values' raw fields (CSV, JSON, `cauda metrics`).
pub const FIELD_VARYING: [&str; 3] = ["images_per_sec", "hours", "gpu_hours"];

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/golden")
}

/// Compares `actual` with `tests/e2e/golden/NAME` (or writes it under `CAUDA_BLESS=1`).
pub fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("CAUDA_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (CAUDA_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file from line {}:\n--- golden\n{}\n--- now\n{}\n\
             (CAUDA_BLESS=1 rewrites it if the change is intended)",
            first + 1,
            expected
                .lines()
                .skip(first)
                .take(3)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(first)
                .take(3)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

/// An aligned table read back by its header's column offsets: every cell must start exactly
/// under its header, after at least two spaces. Returns the headers and the rows' cells.
pub fn read_aligned(lines: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let header: Vec<char> = lines[0].chars().collect();
    let mut starts = vec![0];
    for i in 2..header.len() {
        if header[i] != ' ' && header[i - 1] == ' ' && header[i - 2] == ' ' {
            starts.push(i);
        }
    }
    let cut = |line: &[char]| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let end = starts.get(k + 1).map_or(line.len(), |&e| e.min(line.len()));
                let cell: String = line.get(s..end).unwrap_or(&[]).iter().collect();
                if k > 0 && s <= line.len() && s >= 2 {
                    assert!(
                        line[s - 2..s] == [' ', ' '] && line.get(s) != Some(&' '),
                        "cell {k} is not aligned under its header in {:?}",
                        line.iter().collect::<String>()
                    );
                }
                cell.trim().to_string()
            })
            .collect()
    };
    let headers = cut(&header);
    let rows = lines[1..]
        .iter()
        .map(|l| cut(&l.chars().collect::<Vec<_>>()))
        .collect();
    (headers, rows)
}

/// `rows` with the cells under `columns` replaced by [`VARIES`].
pub fn blank(headers: &[String], rows: &mut [Vec<String>], columns: &[&str]) {
    for column in columns {
        let i = headers.iter().position(|h| h == column).unwrap();
        for row in rows.iter_mut() {
            row[i] = VARIES.into();
        }
    }
}

/// What the report table's named cells must hold, formatted here from the `GetReport` row.
pub fn expected_cells(row: &ReportRow) -> Vec<(&'static str, String)> {
    let pct = |v: Option<f64>| format!("{:.1}", v.unwrap() * 100.0);
    let pm = |m: Option<f64>, s: Option<f64>| format!("{} ± {}", pct(m), pct(s));
    vec![
        ("method", row.method.clone()),
        ("ratio", "10".into()),
        ("runs", row.runs.to_string()),
        ("seeds", "2".into()),
        ("top-1", pm(row.top1_mean, row.top1_std)),
        ("many", pm(row.many, row.many_std)),
        ("medium", pm(row.medium, row.medium_std)),
        ("few", pm(row.few, row.few_std)),
        ("top-5", pct(row.top5_mean)),
        ("worst", pct(row.worst_class)),
        ("ECE", pct(row.ece)),
        ("rel-acc", format!("{:.3}", row.relative_accuracy.unwrap())),
        ("engine", "current".into()),
    ]
}

/// Checks a table read back from `format` against the report, column by column.
pub fn check_cells(
    format: &str,
    report: &GetReportResponse,
    headers: &[String],
    rows: &[Vec<String>],
) {
    assert_eq!(headers, cauda_report::headers(), "{format}: headers");
    assert_eq!(rows.len(), report.rows.len(), "{format}: rows");
    for (cells, row) in rows.iter().zip(&report.rows) {
        assert_eq!(cells.len(), headers.len(), "{format}: cells of {cells:?}");
        for (header, want) in expected_cells(row) {
            let i = headers.iter().position(|h| h == header).unwrap();
            assert_eq!(cells[i], want, "{format}: `{header}` of {cells:?}");
        }
    }
}

/// CSV cells as written (quotes kept), split on the commas outside quotes.
pub fn csv_raw(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cells.last_mut().unwrap().push(c);
            }
            ',' if !quoted => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

/// CSV with the cells of `fields` replaced by [`VARIES`]; checks every line has a cell per
/// header field and returns (header, rows of raw cells, normalized text).
pub fn normalize_csv(text: &str, fields: &[&str]) -> (Vec<String>, Vec<Vec<String>>, String) {
    let mut lines = text.lines();
    let header = csv_raw(lines.next().unwrap());
    let mut rows: Vec<Vec<String>> = lines.map(csv_raw).collect();
    let raw = rows.clone();
    for row in &mut rows {
        assert_eq!(row.len(), header.len(), "a cell per field: {row:?}");
    }
    for field in fields {
        let i = header.iter().position(|h| h == field).unwrap();
        rows.iter_mut().for_each(|r| r[i] = VARIES.into());
    }
    let mut out = format!("{}\n", header.join(","));
    for row in rows {
        out.push_str(&format!("{}\n", row.join(",")));
    }
    (header, raw, out)
}

/// The text between each `open` and the next `close`.
pub fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .map(|s| s.split(close).next().unwrap_or(""))
        .collect()
}

/// The HTML page with its timing cells blanked and its inline SVGs emptied; checks its table.
pub fn normalize_html(page: &str, report: &GetReportResponse) -> String {
    let headers: Vec<String> = between(page, "<th>", "</th>")
        .into_iter()
        .map(String::from)
        .collect();
    let body = between(page, "<tbody>", "</tbody>")[0];
    let mut rows: Vec<Vec<String>> = between(body, "<tr>", "</tr>")
        .iter()
        .map(|tr| {
            between(tr, "<td>", "</td>")
                .into_iter()
                .map(String::from)
                .collect()
        })
        .collect();
    let unescaped: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.replace("&amp;", "&")).collect())
        .collect();
    check_cells("html", report, &headers, &unescaped);
    blank(&headers, &mut rows, &TABLE_VARYING);
    let mut tbody = String::from("\n");
    for row in rows {
        tbody.push_str(&format!("<tr><td>{}</td></tr>\n", row.join("</td><td>")));
    }
    let mut out = page.replace(body, &tbody);
    while let (Some(s), Some(e)) = (out.find("<svg"), out.find("</svg>")) {
        assert!(s < e, "an unclosed <svg>");
        out.replace_range(
            s..e + "</svg>".len(),
            "<!-- a plot (plot_test checks them) -->",
        );
    }
    out
}

/// The report's JSON as printed (fields in `.proto` order) with the values of its varying
/// fields replaced, line by line.
pub fn normalize_report_json(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let key = line
            .trim_start()
            .split(':')
            .next()
            .unwrap_or("")
            .trim_matches('"');
        match line.split_once(": ") {
            Some((head, value)) if FIELD_VARYING.contains(&key) => {
                let comma = if value.ends_with(',') { "," } else { "" };
                out.push_str(&format!("{head}: \"{VARIES}\"{comma}\n"));
            }
            _ => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

/// Checks `text` is `value` printed by its generated serde (pretty, a final newline) and reads
/// back as a `T`. Text, not values, is compared: serde_json without `float_roundtrip` may parse
/// a double one ulp off, though the text is the shortest that round-trips.
pub fn prints<T: serde::Serialize + serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
    value: &T,
) {
    let expected = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    assert_eq!(text, expected, "{what} prints the reply's JSON");
    let _: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} reads back: {e}"));
}
