//! What users see, rendered from a real daemon: a tiny study (an MLP on the embedded digits,
//! 2 methods x 2 seeds with relative accuracy, and a second experiment to compare with) trains
//! through `caudad serve`, then the real `cauda` binary prints `report` in every format,
//! `compare`, `ls`, `show` and `metrics`. Each output is read back cell by cell (as many cells as
//! headers in every row, the named cells holding what `GetReport`, `ListRuns` or `GetMetrics`
//! said), its JSON form checked to be the reply it came from, and the text compared with a
//! golden file in `tests/e2e/golden/` after normalizing only what varies from run to run: wall-clock
//! hours and throughput, the engine fingerprint (a version) and the config hashes that cover it,
//! the `--out` folder, and the HTML page's inline plots (`plot_test` checks those).
//! `CAUDA_BLESS=1` rewrites the goldens. `caudad demo`, which renders the same reply with the same
//! crate, is checked to print that table too.

use crate::common;
use crate::render;

use std::path::Path;
use std::time::Duration;

use cauda_proto::v1::{self, GetReportResponse};
use common::*;
use render::*;

const LIMIT: Duration = Duration::from_secs(300);

type Client = v1::cauda_client::CaudaClient<tonic::transport::Channel>;

/// The study: 2 methods x 2 seeds with relative accuracy (their balanced references too), and
/// `ce` alone for 1 epoch to compare with. Returns the two experiments' ids.
async fn train(client: &mut Client) -> (u64, u64) {
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

/// The real `cauda` against one daemon.
struct Cli<'a> {
    bin: &'a Path,
    addr: &'a str,
    /// The daemon's engine fingerprint, replaced by [`ENGINE`] in what [`Cli::shown`] returns.
    engine: &'a str,
}

impl Cli<'_> {
    /// `cauda ARGS`' stdout, as printed.
    fn run(&self, args: &[&str]) -> String {
        cauda_ok(self.bin, self.addr, args)
    }

    /// `cauda ARGS`' stdout with the engine fingerprint replaced.
    fn shown(&self, args: &[&str]) -> String {
        self.run(args).replace(self.engine, ENGINE)
    }
}

/// The default table (title, aligned rows, notes) and Markdown.
fn report_table_and_markdown(cli: &Cli, report: &GetReportResponse, exp: &str) {
    let text = cli.shown(&["report", exp]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{exp} render"));
    let end = 2 + report.rows.len();
    let (headers, mut rows) = read_aligned(&lines[1..end]);
    check_cells("table", report, &headers, &rows);
    blank(&headers, &mut rows, &TABLE_VARYING);
    let table: Vec<&str> = headers.iter().map(String::as_str).collect();
    let notes = lines[end..].join("\n");
    let aligned = cauda_report::aligned(&table, &rows);
    golden(
        "report.table.txt",
        &format!("{}\n{aligned}{notes}\n", lines[0]),
    );

    let text = cli.shown(&["report", exp, "--format", "markdown"]);
    let split = |l: &str| -> Vec<String> {
        l.strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .unwrap_or_else(|| panic!("not a Markdown row: {l}"))
            .split(" | ")
            .map(String::from)
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let headers = split(lines[0]);
    let mut rows: Vec<Vec<String>> = lines[2..end].iter().map(|l| split(l)).collect();
    check_cells("markdown", report, &headers, &rows);
    blank(&headers, &mut rows, &TABLE_VARYING);
    let mut md: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (i, row) in rows.iter().enumerate() {
        md[2 + i] = format!("| {} |", row.join(" | "));
    }
    golden("report.markdown.md", &format!("{}\n", md.join("\n")));
}

/// `--table test-agnostic`: SADE's eleven shifted test sets, each cell the reply's field in %,
/// the basis of the figures, and a model trained on a long tail does best on the forward test
/// sets and worst backward.
fn report_test_agnostic(cli: &Cli, report: &GetReportResponse, exp: &str) {
    let text = cli.shown(&["report", exp, "--table", "test-agnostic"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{exp} render"));
    let end = 2 + report.rows.len();
    let (headers, rows) = read_aligned(&lines[1..end]);
    let pct = |v: Option<f64>| format!("{:.1}", v.expect("every row has the field") * 100.0);
    for (cells, row) in rows.iter().zip(&report.rows) {
        let fields = [
            row.forward_50,
            row.forward_25,
            row.forward_10,
            row.forward_5,
            row.forward_2,
            row.uniform,
            row.backward_2,
            row.backward_5,
            row.backward_10,
            row.backward_25,
            row.backward_50,
        ];
        assert_eq!(headers[3..5], ["fwd-50", "fwd-25"], "{headers:?}");
        assert_eq!(headers[8], "uniform");
        assert_eq!(headers[13], "bwd-50");
        let want: Vec<String> = fields.iter().map(|&v| pct(v)).collect();
        assert_eq!(cells[3..14], want[..], "{}", row.method);
        // CE and Balanced Softmax have no experts to aggregate: the fixed model's expectation.
        assert_eq!(headers[14], "basis");
        assert!(!row.test_agnostic_aggregated, "{}", row.method);
        assert_eq!(cells[14], "expectation", "{}", row.method);
        let (forward, uniform, backward) =
            (fields[0].unwrap(), fields[5].unwrap(), fields[10].unwrap());
        assert!(
            forward > uniform && uniform > backward,
            "{}: {forward} / {uniform} / {backward}",
            row.method
        );
    }
    golden(
        "report.test-agnostic.txt",
        &format!("{}\n", lines.join("\n")),
    );
}

/// CSV (a cell per ReportRow field, each what the reply's serde says) and JSON (the reply).
fn report_csv_and_json(cli: &Cli, report: &GetReportResponse, exp: &str) {
    let text = cli.shown(&["report", exp, "--format", "csv"]);
    let (fields, raw, csv) = normalize_csv(&text, &FIELD_VARYING);
    assert_eq!(fields, cauda_report::csv_fields().unwrap());
    for (cells, row) in raw.iter().zip(&report.rows) {
        let value = serde_json::to_value(row).unwrap();
        for (field, cell) in fields.iter().zip(cells) {
            let cell = cell.trim_matches('"');
            match value.get(field) {
                Some(serde_json::Value::Number(n)) => {
                    assert_eq!(cell.parse::<f64>().ok(), n.as_f64(), "{field}")
                }
                Some(serde_json::Value::String(s)) => assert_eq!(cell, s, "{field}"),
                Some(serde_json::Value::Bool(b)) => assert_eq!(cell, b.to_string(), "{field}"),
                Some(serde_json::Value::Array(_)) if field == "engines" => {
                    assert_eq!(cell, ENGINE, "{field}")
                }
                Some(serde_json::Value::Array(items)) => {
                    let shown: Vec<String> = items
                        .iter()
                        .map(|c| {
                            format!(
                                "{}={}",
                                c["key"].as_str().unwrap(),
                                c["value"].as_str().unwrap()
                            )
                        })
                        .collect();
                    assert_eq!(cell, shown.join("; "), "{field}")
                }
                other => assert!(cell.is_empty(), "{field}: {other:?} as {cell:?}"),
            }
        }
    }
    golden("report.csv", &csv);

    let text = cli.run(&["report", exp, "--format", "json"]);
    prints("report --format json", &text, report);
    let shown = text.replace(cli.engine, ENGINE);
    golden("report.json", &normalize_report_json(&shown));
}

/// The HTML page, written into `dir`.
fn report_html(cli: &Cli, report: &GetReportResponse, exp: &str, dir: &Path) {
    let out = dir.join("html");
    let said = cli.shown(&[
        "report",
        exp,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    let file = out.join("index.html");
    assert_eq!(said, format!("wrote {}\n", file.display()));
    let page = std::fs::read_to_string(file).unwrap();
    assert_eq!(page.matches("<svg").count(), 2, "both plots inline");
    let shown = page.replace(cli.engine, ENGINE);
    golden("report.html", &normalize_html(&shown, report));
}

/// `cauda compare`: the rows of either experiment matched by method and ratio.
fn compare(cli: &Cli, study: u64, short: u64) {
    let text = cli.shown(&["compare", &format!("e-{study}"), &format!("e-{short}")]);
    let lines: Vec<&str> = text.lines().collect();
    let (headers, rows) = read_aligned(&lines[1..]);
    assert_eq!(headers, cauda_report::compare_headers(study, short));
    let methods: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(methods, ["ce", "balanced-softmax"]);
    assert!(rows.iter().all(|r| r.len() == headers.len()), "{rows:?}");
    assert_eq!(rows[1][3], "-", "balanced-softmax is not in e-{short}");
    golden("compare.txt", &text);
}

/// `ls` (a row per run of the study, in id order, every one succeeded), then `show` and
/// `metrics` of its first run; each JSON form is the reply it came from.
async fn listings(cli: &Cli<'_>, client: &mut Client, study: u64) {
    let exp = format!("e-{study}");
    let request = v1::ListRunsRequest {
        experiment_id: Some(study),
        page_size: 1000,
        view: v1::RunView::Basic.into(),
        ..Default::default()
    };
    let listed = client.list_runs(request).await.unwrap().into_inner().runs;
    let text = cli.shown(&["ls", "--experiment", &exp]);
    let lines: Vec<&str> = text.lines().collect();
    let (headers, rows) = read_aligned(&lines);
    let expected = ["ID", "NAME", "STATE", "ATTEMPT", "DEVICES", "REASON/ERROR"];
    assert_eq!(headers, expected);
    assert_eq!(rows.len(), listed.len());
    for (cells, run) in rows.iter().zip(&listed) {
        assert_eq!(cells.len(), headers.len(), "{cells:?}");
        let id = format!("r-{}", run.run_id);
        assert_eq!(cells[..3], [id, run.name.clone(), "succeeded".into()]);
    }
    golden("ls.txt", &text);
    let json = cli.run(&["ls", "--experiment", &exp, "--json"]);
    prints("ls --json", &json, &listed);

    let run = get_run(client, listed[0].run_id).await;
    let id = format!("r-{}", run.run_id);
    let text = cli
        .shown(&["show", &id])
        .replace(&run.config_hash, "<config-hash>");
    assert!(text.contains(&format!("run:          {id}\n")), "{text}");
    golden("show.txt", &text);
    prints("show --json", &cli.run(&["show", &id, "--json"]), &run);

    let request = v1::GetMetricsRequest { run_id: run.run_id };
    let metrics = client.get_metrics(request).await.unwrap().into_inner();
    let text = cli.shown(&["metrics", &id]);
    let (header, raw, csv) = normalize_csv(&text, &["images_per_sec"]);
    assert_eq!(raw.len(), metrics.epochs.len());
    let top1 = header.iter().position(|h| h == "test_top1").unwrap();
    for (cells, epoch) in raw.iter().zip(&metrics.epochs) {
        let want = epoch.eval.as_ref().unwrap().test_top1;
        assert_eq!(cells[top1].parse::<f32>().ok(), Some(want), "{cells:?}");
    }
    golden("metrics.csv", &csv);
    let json = cli.run(&["metrics", &id, "--format", "json"]);
    prints("metrics --format json", &json, &metrics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_renders_what_the_daemon_said() {
    let Some(bin) = cauda_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\nmax_retries = 0\n");
    let mut client = daemon.client().await;
    let (study, short) = train(&mut client).await;
    let request = v1::GetReportRequest {
        experiment_id: study,
    };
    let report = client.get_report(request).await.unwrap().into_inner();
    assert_eq!(report.rows.len(), 2, "{report:?}");
    let cli = Cli {
        bin: &bin,
        addr: &daemon.url,
        engine: &report.engine,
    };
    let exp = format!("e-{study}");
    report_table_and_markdown(&cli, &report, &exp);
    report_csv_and_json(&cli, &report, &exp);
    report_html(&cli, &report, &exp, dir.path());
    report_test_agnostic(&cli, &report, &exp);
    compare(&cli, study, short);
    listings(&cli, &mut client, study).await;
}

/// `caudad demo` prints the report table `cauda report` prints: the same headers from the same
/// column list, a row per method with a cell under every header.
#[test]
fn the_demo_prints_the_report_table() {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(common::caudad_bin())
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
