//! What users see, rendered from a real daemon: a tiny study (an MLP on the embedded digits,
//! 2 methods x 2 seeds with relative accuracy, and a second experiment to compare with) trains
//! through `caudad serve`, then the real `cauda` binary prints `report` in every format,
//! `compare`, `ls`, `show` and `metrics`. Each output is read back cell by cell (as many cells as
//! headers in every row, the named cells holding what `GetReport`, `ListRuns` or `GetMetrics`
//! said), its JSON form checked to be the reply it came from, and the text compared with a
//! golden file in `tests/golden/` after normalizing only what varies from run to run: wall-clock
//! hours and throughput, the engine fingerprint (a version) and the config hashes that cover it,
//! the `--out` folder, and the HTML page's inline plots (`plot_test` checks those).
//! `CAUDA_BLESS=1` rewrites the goldens. `caudad demo`, which renders the same reply with the same
//! crate, is checked to print that table too.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cauda_proto::v1::{self, GetReportResponse, ReportRow};
use common::*;

const LIMIT: Duration = Duration::from_secs(300);
/// Replaces a value that varies between runs (time, throughput).
const VARIES: &str = "<varies>";
/// Replaces the daemon's engine fingerprint.
const ENGINE: &str = "<engine>";

/// The table columns whose cells are times or throughput.
const TABLE_VARYING: [&str; 3] = ["img/s", "hours", "GPU-h"];
/// The same values' raw fields (CSV, JSON, `cauda metrics`).
const FIELD_VARYING: [&str; 3] = ["images_per_sec", "hours", "gpu_hours"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with `tests/golden/NAME` (or writes it under `CAUDA_BLESS=1`).
fn golden(name: &str, actual: &str) {
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
fn read_aligned(lines: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
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
fn blank(headers: &[String], rows: &mut [Vec<String>], columns: &[&str]) {
    for column in columns {
        let i = headers.iter().position(|h| h == column).unwrap();
        for row in rows.iter_mut() {
            row[i] = VARIES.into();
        }
    }
}

/// What the report table's named cells must hold, formatted here from the `GetReport` row.
fn expected_cells(row: &ReportRow) -> Vec<(&'static str, String)> {
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
fn check_cells(format: &str, report: &GetReportResponse, headers: &[String], rows: &[Vec<String>]) {
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
fn csv_raw(line: &str) -> Vec<String> {
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
fn normalize_csv(text: &str, fields: &[&str]) -> (Vec<String>, Vec<Vec<String>>, String) {
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
fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .map(|s| s.split(close).next().unwrap_or(""))
        .collect()
}

/// The HTML page with its timing cells blanked and its inline SVGs emptied; checks its table.
fn normalize_html(page: &str, report: &GetReportResponse) -> String {
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
fn normalize_report_json(text: &str) -> String {
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
fn prints<T: serde::Serialize + serde::de::DeserializeOwned>(what: &str, text: &str, value: &T) {
    let expected = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    assert_eq!(text, expected, "{what} prints the reply's JSON");
    let _: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} reads back: {e}"));
}

/// The study: 2 methods x 2 seeds with relative accuracy (their balanced references too), and
/// `ce` alone for 1 epoch to compare with. Returns the two experiments' ids.
async fn train(
    client: &mut cauda_proto::v1::cauda_client::CaudaClient<tonic::transport::Channel>,
) -> (u64, u64) {
    let grid = "[report]\nrelative_accuracy = true\n[sweep]\nmethod = [\"ce\", \"balanced-softmax\"]\n\"train.seed\" = [1, 2]\n";
    let study = submit(client, &tiny_spec("render", 2, grid)).await;
    let again = submit(
        client,
        &tiny_spec("short", 1, "[sweep]\n\"train.seed\" = [1, 2]\n"),
    )
    .await;
    let ids: Vec<u64> = study
        .runs
        .iter()
        .chain(&again.runs)
        .map(|r| r.run_id)
        .collect();
    for run in wait_all_done(client, &ids, LIMIT).await {
        assert_eq!(
            run.state(),
            v1::RunState::Succeeded,
            "{}: {:?}",
            run.name,
            run.error
        );
    }
    (study.experiment_id, again.experiment_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_renders_what_the_daemon_said() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\nmax_retries = 0\n");
    let mut client = daemon.client().await;
    let (study, short) = train(&mut client).await;
    let report = client
        .get_report(v1::GetReportRequest {
            experiment_id: study,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.rows.len(), 2, "{report:?}");
    let addr = daemon.url.as_str();
    let cauda = |args: &[&str]| cauda_ok(&cli, addr, args).replace(&report.engine, ENGINE);
    let exp = format!("e-{study}");

    // The default table: title, aligned rows, notes.
    let text = cauda(&["report", &exp]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{exp} render"));
    let end = 2 + report.rows.len();
    let (headers, mut rows) = read_aligned(&lines[1..end]);
    check_cells("table", &report, &headers, &rows);
    blank(&headers, &mut rows, &TABLE_VARYING);
    let table: Vec<&str> = headers.iter().map(String::as_str).collect();
    let notes = lines[end..].join("\n");
    golden(
        "report.table.txt",
        &format!(
            "{}\n{}{notes}\n",
            lines[0],
            cauda_report::aligned(&table, &rows)
        ),
    );

    // Markdown.
    let text = cauda(&["report", &exp, "--format", "markdown"]);
    let split = |l: &str| -> Vec<String> {
        l.strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .unwrap()
            .split(" | ")
            .map(String::from)
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let headers = split(lines[0]);
    let mut rows: Vec<Vec<String>> = lines[2..2 + report.rows.len()]
        .iter()
        .map(|l| split(l))
        .collect();
    check_cells("markdown", &report, &headers, &rows);
    blank(&headers, &mut rows, &TABLE_VARYING);
    let mut md: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (i, row) in rows.iter().enumerate() {
        md[2 + i] = format!("| {} |", row.join(" | "));
    }
    golden("report.markdown.md", &format!("{}\n", md.join("\n")));

    // CSV: a cell per ReportRow field, each what the reply's serde says.
    let text = cauda(&["report", &exp, "--format", "csv"]);
    let (fields, raw, csv) = normalize_csv(&text, &FIELD_VARYING);
    assert_eq!(fields, cauda_report::csv_fields().unwrap());
    for (cells, row) in raw.iter().zip(&report.rows) {
        let value = serde_json::to_value(row).unwrap();
        for (field, cell) in fields.iter().zip(cells) {
            let cell = cell.trim_matches('"').replace(&report.engine, ENGINE);
            match value.get(field) {
                Some(serde_json::Value::Number(n)) => {
                    assert_eq!(cell.parse::<f64>().unwrap(), n.as_f64().unwrap(), "{field}")
                }
                Some(serde_json::Value::String(s)) => assert_eq!(cell, *s, "{field}"),
                Some(serde_json::Value::Bool(b)) => assert_eq!(cell, b.to_string(), "{field}"),
                Some(serde_json::Value::Array(_)) => assert_eq!(cell, ENGINE, "{field}"),
                other => assert!(cell.is_empty(), "{field}: {other:?} as {cell:?}"),
            }
        }
    }
    golden("report.csv", &csv);

    // JSON: the reply itself.
    let text = cauda_ok(&cli, addr, &["report", &exp, "--format", "json"]);
    prints("report --format json", &text, &report);
    golden(
        "report.json",
        &normalize_report_json(&text.replace(&report.engine, ENGINE)),
    );

    // HTML.
    let out = dir.path().join("html");
    let said = cauda(&[
        "report",
        &exp,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        said,
        format!("wrote {}\n", out.join("index.html").display())
    );
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 2, "both plots inline");
    golden(
        "report.html",
        &normalize_html(&page.replace(&report.engine, ENGINE), &report),
    );

    // compare: rows of either experiment matched by method and ratio.
    let text = cauda(&["compare", &exp, &format!("e-{short}")]);
    let lines: Vec<&str> = text.lines().collect();
    let (headers, rows) = read_aligned(&lines[1..]);
    assert_eq!(headers, cauda_report::compare_headers(study, short));
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["ce", "balanced-softmax"]
    );
    assert!(rows.iter().all(|r| r.len() == headers.len()));
    assert_eq!(rows[1][3], "-", "balanced-softmax is not in e-{short}");
    golden("compare.txt", &text);

    // ls: a row per run of the study, in id order, every one succeeded.
    let listed = client
        .list_runs(v1::ListRunsRequest {
            experiment_id: Some(study),
            page_size: 1000,
            view: v1::RunView::Basic.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    let text = cauda(&["ls", "--experiment", &exp]);
    let lines: Vec<&str> = text.lines().collect();
    let (headers, rows) = read_aligned(&lines);
    assert_eq!(
        headers,
        ["ID", "NAME", "STATE", "ATTEMPT", "DEVICES", "REASON/ERROR"]
    );
    assert_eq!(rows.len(), listed.len());
    for (cells, run) in rows.iter().zip(&listed) {
        assert_eq!(cells.len(), headers.len(), "{cells:?}");
        assert_eq!(
            cells[..3],
            [
                format!("r-{}", run.run_id),
                run.name.clone(),
                "succeeded".into()
            ]
        );
    }
    golden("ls.txt", &text);
    let json = cauda_ok(&cli, addr, &["ls", "--experiment", &exp, "--json"]);
    prints("ls --json", &json, &listed);

    // show: one run in full; its JSON is GetRun's run.
    let run = get_run(&mut client, listed[0].run_id).await;
    let id = format!("r-{}", run.run_id);
    let text = cauda(&["show", &id]).replace(&run.config_hash, "<config-hash>");
    assert!(text.contains(&format!("run:          {id}\n")), "{text}");
    golden("show.txt", &text);
    let json = cauda_ok(&cli, addr, &["show", &id, "--json"]);
    prints("show --json", &json, &run);

    // metrics: a CSV line per epoch, under the header; its JSON is GetMetrics' reply.
    let metrics = client
        .get_metrics(v1::GetMetricsRequest { run_id: run.run_id })
        .await
        .unwrap()
        .into_inner();
    let text = cauda(&["metrics", &id]);
    let (header, raw, csv) = normalize_csv(&text, &["images_per_sec"]);
    assert_eq!(raw.len(), metrics.epochs.len());
    let top1 = header.iter().position(|h| h == "test_top1").unwrap();
    for (cells, epoch) in raw.iter().zip(&metrics.epochs) {
        assert_eq!(
            cells[top1].parse::<f32>().unwrap(),
            epoch.eval.as_ref().unwrap().test_top1
        );
    }
    golden("metrics.csv", &csv);
    let json = cauda_ok(&cli, addr, &["metrics", &id, "--format", "json"]);
    prints("metrics --format json", &json, &metrics);
}

/// `caudad demo` prints the report table `cauda report` prints: the same headers from the same
/// column list, a row per method with a cell under every header.
#[test]
fn the_demo_prints_the_report_table() {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_caudad"))
        .args(["demo", "--devices", "cpu:2", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child, LIMIT, "caudad demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let title = lines
        .iter()
        .position(|l| *l == "e-1 digits-lt")
        .expect(&text);
    let rows = lines[title + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect::<Vec<_>>();
    let (headers, cells) = read_aligned(&rows);
    assert_eq!(headers, cauda_report::headers());
    assert_eq!(cells.len(), 13, "a row per method of the demo: {text}");
    for row in &cells {
        assert_eq!(row.len(), headers.len(), "{row:?}");
        assert_eq!(row[headers.len() - 1], "current", "{row:?}");
    }
    assert!(text.contains(cauda_report::NOTE), "{text}");
}
