//! Experiments as the survey reads them, through the real daemon and workers: a grid of presets
//! x 2 seeds with relative accuracy. Decoupled methods wait for and start from one shared
//! stage-1 run, identical runs are trained once and reused across experiments, the balanced
//! references are scheduled by the daemon, and the report's relative accuracy matches the formula
//! on the stored numbers. A failed stage 1 fails its dependents with the reason.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(240);

fn top1(run: &v1::Run) -> f64 {
    let last = run.summary.as_ref().and_then(|s| s.last.as_ref()).unwrap();
    f64::from(last.test_top1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_with_decoupled_methods_and_relative_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\nmax_retries = 0\n");
    let mut client = daemon.client().await;
    let grid = "[report]\nrelative_accuracy = true\n[sweep]\nmethod = [\"ce\", \"focal\", \"crt\", \"lws\", \"tau-norm\"]\n\"train.seed\" = [1, 2]\n";
    let spec = tiny_spec("study", 3, grid).replace("ratio = 10", "ratio = 5");
    let submitted = submit(&mut client, &spec).await;
    // ce, focal: 2 runs each; crt, lws, tau-norm: a stage 2 each on the shared stage 1, which is
    // the ce run itself; references: ce-balanced (shared by every method of a seed; it is also
    // ce's own balanced run), focal/crt/lws/tau-norm balanced (the decoupled ones again on the
    // balanced ce run as their stage 1).
    assert!(submitted.runs.iter().all(|r| !r.reused));
    assert_eq!(
        submitted.runs.len(),
        2 + 2 + 6 + 2 + 2 + 6,
        "{:#?}",
        submitted.runs
    );
    let ids: Vec<u64> = submitted.runs.iter().map(|r| r.run_id).collect();
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let by_name: BTreeMap<String, v1::Run> =
        runs.iter().map(|r| (r.name.clone(), r.clone())).collect();
    for run in &runs {
        assert_eq!(
            run.state(),
            v1::RunState::Succeeded,
            "{}: {:?}",
            run.name,
            run.error
        );
    }
    for seed in [1, 2] {
        let ce = &by_name[&format!("study/method=ce,train.seed={seed}")];
        for method in ["crt", "lws", "tau-norm"] {
            let run = &by_name[&format!("study/method={method},train.seed={seed}")];
            assert_eq!(
                run.depends_on,
                Some(ce.run_id),
                "{method} waits for the ce run"
            );
            assert!(
                run.started_at_ms >= ce.finished_at_ms,
                "{method} started after stage 1"
            );
            let metrics = epochs(&mut client, run.run_id).await;
            let numbers: Vec<u32> = metrics.iter().map(|m| m.epoch).collect();
            assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>());
            assert_eq!(
                metrics.iter().filter(|m| m.stage == 1).count(),
                3,
                "stage 1 carried over"
            );
            if method != "tau-norm" {
                assert_eq!(metrics.iter().filter(|m| m.stage == 2).count(), 10);
            }
            let logs = log_lines(&events(&mut client, run.run_id).await);
            let from = format!("final checkpoint of its stage-1 run r-{}", ce.run_id);
            assert!(logs.iter().any(|l| l.contains(&from)), "{method}: {logs:?}");
        }
    }

    // The report: relative accuracy from the stored numbers, by the survey's formula.
    let report = client
        .get_report(v1::GetReportRequest {
            experiment_id: submitted.experiment_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.rows.len(), 5);
    for row in &report.rows {
        assert_eq!((row.runs, row.seeds, row.succeeded), (2, 2, 2), "{row:?}");
        let mean = |names: Vec<String>| {
            names.iter().map(|n| top1(&by_name[n])).sum::<f64>() / names.len() as f64
        };
        let point = |seed: u32| format!("study/method={},train.seed={seed}", row.method);
        let a_t = mean(vec![point(1), point(2)]);
        let a_v = mean(vec![
            "study/method=ce,train.seed=1/ce-balanced".into(),
            "study/method=ce,train.seed=2/ce-balanced".into(),
        ]);
        let balanced = |seed: u32| {
            // ce's own balanced run is the shared ce-balanced one.
            let own = format!("{}/balanced", point(seed));
            if by_name.contains_key(&own) {
                own
            } else {
                format!("study/method=ce,train.seed={seed}/ce-balanced")
            }
        };
        let a_b = mean(vec![balanced(1), balanced(2)]);
        assert!((row.a_t.unwrap() - a_t).abs() < 1e-6, "{row:?}");
        assert!((row.a_v.unwrap() - a_v).abs() < 1e-6, "{row:?}");
        assert!((row.a_b.unwrap() - a_b).abs() < 1e-6, "{row:?}");
        let expected = a_t / a_v.max(a_b);
        assert!(
            (row.relative_accuracy.unwrap() - expected).abs() < 1e-9,
            "{row:?}"
        );
        let tops: Vec<f64> = [point(1), point(2)]
            .iter()
            .map(|n| top1(&by_name[n]))
            .collect();
        let std = ((tops[0] - a_t).powi(2) + (tops[1] - a_t).powi(2)).sqrt(); // n - 1 = 1
        assert!((row.top1_std.unwrap() - std).abs() < 1e-9);
    }

    // A second experiment with runs already trained reuses them and says so.
    let again = tiny_spec(
        "again",
        3,
        "[sweep]\nmethod = [\"ce\", \"crt\"]\n\"train.seed\" = [1]\n",
    )
    .replace("ratio = 10", "ratio = 5");
    let second = submit(&mut client, &again).await;
    assert_eq!(second.runs.len(), 2);
    assert!(second.runs.iter().all(|r| r.reused), "{:?}", second.runs);
    let report = client
        .get_report(v1::GetReportRequest {
            experiment_id: second.experiment_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.rows.len(), 2);
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.succeeded == 1 && r.top1_mean.is_some())
    );
    // Engine runs carry their calibration and worst class.
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.ece.is_some_and(|e| (0.0..=1.0).contains(&e))
                && r.nll.is_some_and(|n| n > 0.0)
                && r.worst_class
                    .is_some_and(|w| w <= r.top1_mean.unwrap_or(0.0))),
        "{:?}",
        report.rows
    );
    // Ten classes: the report carries top-5, never below top-1.
    assert!(
        report.rows.iter().all(|r| r
            .top5_mean
            .is_some_and(|t5| t5 >= r.top1_mean.unwrap_or(1.0))),
        "{:?}",
        report.rows
    );

    // The report through the cauda binary, as JSON rows with the documented fields.
    let Some(cli) = cauda_bin() else { return };
    let json: serde_json::Value = serde_json::from_str(&cauda_ok(
        &cli,
        &daemon.url,
        &["report", "e-1", "--format", "json"],
    ))
    .unwrap();
    let row = &json["rows"][0];
    for key in [
        "method",
        "ratio",
        "seeds",
        "top1_mean",
        "top1_std",
        "top5_mean",
        "ece",
        "nll",
        "worst_class",
        "many_std",
        "many",
        "medium",
        "relative_accuracy",
    ] {
        assert!(row.get(key).is_some(), "{key} in {row}");
    }
    // The proto3 JSON mapping leaves an absent value out: at ratio 5 no class has under 20
    // training images, so the row has no few-shot accuracy.
    assert_eq!(report.rows[0].few, None);
    assert!(row.get("few").is_none(), "{row}");
    assert_eq!(row["ratio"], 5.0);

    // The default table: a cell under every header in every row (it once panicked).
    let table = cauda_ok(&cli, &daemon.url, &["report", "e-1"]);
    let split = |line: &str| line.split("  ").filter(|c| !c.trim().is_empty()).count();
    let lines: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1 + 5,
        "a header and one row per method: {table}"
    );
    assert!(lines.iter().all(|l| split(l) == split(lines[0])), "{table}");
    assert!(lines[1..].iter().all(|l| l.ends_with("current")), "{table}");

    // The HTML page: the table and both plots inline, one line per method.
    let html = dir.path().join("html");
    cauda_ok(
        &cli,
        &daemon.url,
        &[
            "report",
            "e-1",
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    let page = std::fs::read_to_string(dir.path().join("html/index.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 2);
    for method in ["ce", "focal", "crt", "lws", "tau-norm"] {
        assert!(page.contains(&format!("<td>{method}</td>")), "{method}");
    }
    assert!(
        !page.contains("stage1") && !page.contains("balanced ("),
        "points only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stage_1_fails_its_dependents_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\nmax_retries = 0\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec("broken", 2, "")
        .replace("method = \"ce\"", "method = \"crt\"")
        .replace(
            "format = \"digits\"",
            "format = \"idx\"\npath = \"/usr/share/datasets/nonexistent/cauda-stage1\"",
        );
    let submitted = submit(&mut client, &spec).await;
    assert_eq!(submitted.runs.len(), 2, "the crt run and its stage 1");
    let ids: Vec<u64> = submitted.runs.iter().map(|r| r.run_id).collect();
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let stage2 = runs.iter().find(|r| r.depends_on.is_some()).unwrap();
    let stage1 = runs.iter().find(|r| r.depends_on.is_none()).unwrap();
    assert_eq!(stage1.state(), v1::RunState::Failed);
    assert_eq!(stage2.state(), v1::RunState::Failed);
    assert_eq!(stage2.attempt, 0, "never launched");
    let error = stage2.error.clone().unwrap();
    assert!(
        error.contains(&format!("r-{}", stage1.run_id)) && error.contains("failed"),
        "{error}"
    );
}
