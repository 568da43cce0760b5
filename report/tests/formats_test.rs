//! Every report format rendered from realistic rows and read back column by column: as many
//! cells as headers in every row of every format, and each value under its header.

use cauda_proto::v1::{GetReportResponse, GridCoordinate, ReportRow};
use cauda_report::*;
use serde_json::{Value, json};

const CURRENT: &str = "cauda-plugins 0.1.0 recipe 2";

/// Three rows as a daemon sends them: a finished row with every value, a row with a failed seed
/// trained partly by an older engine, and a row still queued.
fn report() -> GetReportResponse {
    GetReportResponse {
        experiment_id: 3,
        name: "fmnist-lt".into(),
        engine: CURRENT.into(),
        rows: vec![
            ReportRow {
                label: "fmnist-lt/data.imbalance.ratio=100,method=ce".into(),
                method: "ce".into(),
                ratio: Some(100.0),
                runs: 3,
                succeeded: 3,
                failed: 0,
                seeds: 3,
                top1_mean: Some(0.7123),
                top1_std: Some(0.0151),
                top5_mean: Some(0.9512),
                many: Some(0.9),
                medium: Some(0.65),
                few: Some(0.25),
                many_std: Some(0.011),
                medium_std: Some(0.024),
                few_std: Some(0.0537),
                worst_class: Some(0.125),
                ece: Some(0.0631),
                nll: Some(1.0625),
                val_selected_top1: Some(0.7034),
                best_test_top1: Some(0.72),
                relative_accuracy: Some(0.8),
                a_t: Some(0.7123),
                a_v: Some(0.89),
                a_b: Some(0.85),
                images_per_sec: Some(1234.4),
                hours: 1.5,
                gpu_hours: 0.75,
                engines: vec![CURRENT.into()],
                older_engine: false,
                forward_50: Some(0.8711),
                forward_25: Some(0.8532),
                forward_10: Some(0.8204),
                forward_5: Some(0.7893),
                forward_2: Some(0.7466),
                uniform: Some(0.7123),
                backward_2: Some(0.6781),
                backward_5: Some(0.6312),
                backward_10: Some(0.5925),
                backward_25: Some(0.5417),
                backward_50: Some(0.5013),
                test_agnostic_aggregated: false,
                coordinates: vec![
                    GridCoordinate {
                        key: "data.imbalance.ratio".into(),
                        value: "100".into(),
                    },
                    GridCoordinate {
                        key: "method".into(),
                        value: "ce".into(),
                    },
                ],
            },
            ReportRow {
                label: "fmnist-lt/data.imbalance.ratio=10,method=crt".into(),
                method: "crt".into(),
                ratio: Some(10.0),
                runs: 3,
                succeeded: 2,
                failed: 1,
                seeds: 2,
                top1_mean: Some(0.8),
                top1_std: Some(0.02),
                many: Some(0.95),
                medium: Some(0.78),
                few: Some(0.41),
                images_per_sec: Some(900.0),
                hours: 0.25,
                engines: vec!["cauda-plugins 0.1.0 recipe 1".into(), CURRENT.into()],
                older_engine: true,
                ..ReportRow::default()
            },
            ReportRow {
                label: "fmnist-lt/method=focal".into(),
                method: "focal".into(),
                runs: 2,
                engines: vec![CURRENT.into()],
                ..ReportRow::default()
            },
        ],
    }
}

/// What each row must show under each header of the table (text, Markdown, HTML).
fn expected_cells() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![
            ("method", "ce"),
            ("ratio", "100"),
            ("runs", "3"),
            ("seeds", "3"),
            ("top-1", "71.2 ± 1.5"),
            ("top-5", "95.1"),
            ("many", "90.0 ± 1.1"),
            ("medium", "65.0 ± 2.4"),
            ("few", "25.0 ± 5.4"),
            ("worst", "12.5"),
            ("ECE", "6.3"),
            ("val-sel", "70.3"),
            ("best-test*", "72.0"),
            ("rel-acc", "0.800"),
            ("img/s", "1234"),
            ("hours", "1.50"),
            ("GPU-h", "0.75"),
            ("engine", "current"),
        ],
        vec![
            ("method", "crt"),
            ("ratio", "10"),
            ("runs", "3 (1 failed)"),
            ("seeds", "2"),
            ("top-1", "80.0 ± 2.0"),
            ("top-5", "-"),
            ("many", "95.0"),
            ("medium", "78.0"),
            ("few", "41.0"),
            ("worst", "-"),
            ("ECE", "-"),
            ("val-sel", "-"),
            ("best-test*", "-"),
            ("rel-acc", "-"),
            ("img/s", "900"),
            ("hours", "0.25"),
            ("GPU-h", "0.00"),
            ("engine", "older"),
        ],
        vec![
            ("method", "focal"),
            ("ratio", "-"),
            ("runs", "2 (0 done)"),
            ("seeds", "0"),
            ("top-1", "-"),
            ("few", "-"),
            ("img/s", "-"),
            ("hours", "0.00"),
            ("engine", "current"),
        ],
    ]
}

/// Checks a rendered table read back as `headers` and `rows` of cells.
fn assert_table(format: &str, headers: &[String], rows: &[Vec<String>]) {
    assert_eq!(headers, &cauda_report::headers(), "{format}: headers");
    assert_eq!(rows.len(), 3, "{format}: {rows:?}");
    for (row, expected) in rows.iter().zip(expected_cells()) {
        assert_eq!(row.len(), headers.len(), "{format}: cells of {row:?}");
        for (header, want) in expected {
            let column = headers.iter().position(|h| h == header).unwrap();
            assert_eq!(row[column], want, "{format}: `{header}` of {row:?}");
        }
    }
}

#[test]
fn the_default_table_has_a_cell_under_every_header() {
    let text = table_text(&report());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "e-3 fmnist-lt");
    // Columns are separated by two spaces or more; no cell holds two spaces.
    let split = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let rows: Vec<Vec<String>> = lines[2..5].iter().map(|l| split(l)).collect();
    assert_table("table", &split(lines[1]), &rows);
    assert!(lines[5].is_empty(), "{text}");
    assert!(text.contains(NOTE), "{text}");
    assert!(
        text.contains(&format!("the daemon's ({CURRENT})")),
        "{text}"
    );
}

#[test]
fn markdown_has_a_cell_under_every_header() {
    let text = markdown(&report());
    let lines: Vec<&str> = text.lines().collect();
    let split = |line: &str| -> Vec<String> {
        line.strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .unwrap_or_else(|| panic!("not a table line: {line}"))
            .split(" | ")
            .map(String::from)
            .collect()
    };
    assert_eq!(lines[1].matches("---|").count(), COLUMNS.len());
    let rows: Vec<Vec<String>> = lines[2..5].iter().map(|l| split(l)).collect();
    assert_table("markdown", &split(lines[0]), &rows);
    assert_eq!(lines[5], "");
    assert!(text.contains(NOTE));
}

#[test]
fn html_has_a_cell_under_every_header() {
    let figure = Figure {
        caption: "Test top-1 against epoch".into(),
        svg: "<svg></svg>".into(),
    };
    let page = html(&report(), std::slice::from_ref(&figure));
    let between = |text: &str, open: &str, close: &str| -> Vec<String> {
        text.split(open)
            .skip(1)
            .map(|s| s.split(close).next().unwrap_or("").to_string())
            .collect()
    };
    let head = between(&page, "<thead>", "</thead>").remove(0);
    let headers = between(&head, "<th>", "</th>");
    let body = between(&page, "<tbody>", "</tbody>").remove(0);
    let rows: Vec<Vec<String>> = between(&body, "<tr>", "</tr>")
        .iter()
        .map(|tr| between(tr, "<td>", "</td>"))
        .collect();
    assert_table("html", &headers, &rows);
    assert!(page.contains("<svg></svg>"));
    assert!(page.contains("<p>top-1 and many/medium/few"), "the notes");
    assert!(page.ends_with("</html>\n"), "{page}");
}

/// Reads CSV back: quoted cells may hold commas and doubled quotes.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[test]
fn csv_has_a_value_under_every_field() {
    let text = csv(&report()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let names = parse_csv_line(lines[0]);
    assert_eq!(names, csv_fields().unwrap());
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| parse_csv_line(l)).collect();
    let get = |row: usize, name: &str| {
        assert_eq!(rows[row].len(), names.len(), "{:?}", rows[row]);
        rows[row][names.iter().position(|n| n == name).unwrap()].clone()
    };
    assert_eq!(
        get(0, "label"),
        "fmnist-lt/data.imbalance.ratio=100,method=ce"
    );
    assert!(lines[1].starts_with(
        "\"fmnist-lt/data.imbalance.ratio=100,method=ce\",\"ce\",100,3,3,0,3,0.7123,0.0151,"
    ));
    for (name, want) in [
        ("method", "ce"),
        ("ratio", "100"),
        ("top1_std", "0.0151"),
        ("top5_mean", "0.9512"),
        ("medium", "0.65"),
        ("few_std", "0.0537"),
        ("worst_class", "0.125"),
        ("ece", "0.0631"),
        ("nll", "1.0625"),
        ("relative_accuracy", "0.8"),
        ("a_v", "0.89"),
        ("images_per_sec", "1234.4"),
        ("hours", "1.5"),
        ("gpu_hours", "0.75"),
        ("engines", CURRENT),
        ("older_engine", "false"),
        ("backward_50", "0.5013"),
        ("test_agnostic_aggregated", "false"),
    ] {
        assert_eq!(get(0, name), want, "{name}");
    }
    assert_eq!(get(1, "failed"), "1");
    assert_eq!(get(1, "val_selected_top1"), "", "missing is empty");
    assert_eq!(get(1, "top5_mean"), "", "no top-5 is empty");
    assert_eq!(
        get(1, "engines"),
        format!("cauda-plugins 0.1.0 recipe 1; {CURRENT}")
    );
    assert_eq!(get(1, "older_engine"), "true");
    assert_eq!(get(2, "ratio"), "");
    assert_eq!(get(2, "gpu_hours"), "0");
}

#[test]
fn json_is_the_reply_in_the_proto3_mapping_with_every_present_field() {
    let text = json(&report()).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();
    // proto3 JSON: 64-bit integers are strings.
    assert_eq!(j["experiment_id"], "3");
    assert_eq!(j["name"], "fmnist-lt");
    assert_eq!(j["engine"], CURRENT);
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // The first row has every optional value: its keys are exactly the CSV columns.
    let mut keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut names: Vec<&str> = csv_fields().unwrap().iter().map(String::as_str).collect();
    keys.sort_unstable();
    names.sort_unstable();
    assert_eq!(keys, names);
    assert_eq!(rows[0]["method"], "ce");
    assert_eq!(rows[0]["ratio"], 100.0);
    assert_eq!(rows[0]["top1_mean"], 0.7123);
    assert_eq!(rows[0]["seeds"], 3);
    assert_eq!(rows[0]["engines"], json!([CURRENT]));
    assert_eq!(rows[1]["older_engine"], true);
    // An absent optional value is left out; plain fields are written even when zero.
    assert!(rows[1].get("val_selected_top1").is_none());
    assert!(rows[2].get("ratio").is_none());
    assert_eq!(rows[2]["gpu_hours"], 0.0);
    // And it reads back as the same reply.
    let back: GetReportResponse = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report());
}

#[test]
fn every_format_renders() {
    for format in Format::ALL {
        let text = render(&report(), format, &[]).unwrap();
        for method in ["ce", "crt", "focal"] {
            assert!(text.contains(method), "{format:?}: {text}");
        }
        assert!(text.ends_with('\n'), "{format:?}");
    }
}

#[test]
fn engine_current_leaves_out_the_rows_of_an_older_engine() {
    let current = current_engine_only(report());
    let methods: Vec<&str> = current.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["ce", "focal"]);
    let text = table_text(&current);
    let rows: Vec<&str> = text.lines().skip(2).take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().all(|l| l.ends_with("current")), "{text}");
}

/// Two rows of one method and ratio that differ in another swept key (the learning rate).
fn two_learning_rates() -> GetReportResponse {
    let row = |lr: &str, top1: f64| ReportRow {
        label: format!("lr-study/method=ce,optimizer.lr={lr}"),
        coordinates: [("method", "ce"), ("optimizer.lr", lr)]
            .into_iter()
            .map(|(key, value)| GridCoordinate {
                key: key.into(),
                value: value.into(),
            })
            .collect(),
        method: "ce".into(),
        ratio: Some(10.0),
        runs: 1,
        succeeded: 1,
        seeds: 1,
        top1_mean: Some(top1),
        ..ReportRow::default()
    };
    GetReportResponse {
        experiment_id: 4,
        name: "lr-study".into(),
        rows: vec![row("0.1", 0.5), row("0.01", 0.6)],
        ..GetReportResponse::default()
    }
}

#[test]
fn rows_that_differ_in_another_swept_key_say_which_they_are() {
    let text = table_text(&two_learning_rates());
    let methods: Vec<&str> = text
        .lines()
        .skip(2)
        .take(2)
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["ce (optimizer.lr=0.1)", "ce (optimizer.lr=0.01)"],
        "{text}"
    );
}

#[test]
fn compare_keeps_every_row_of_one_method_and_ratio() {
    let a = two_learning_rates();
    let mut b = two_learning_rates();
    b.experiment_id = 5;
    b.rows[1].top1_mean = Some(0.7);
    let text = compare(&a, &b);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        rows[0][..5],
        ["ce (optimizer.lr=0.1)", "10", "50.0", "50.0", "+0.0"]
    );
    assert_eq!(
        rows[1][..5],
        ["ce (optimizer.lr=0.01)", "10", "60.0", "70.0", "+10.0"]
    );
}
