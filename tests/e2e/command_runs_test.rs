//! Command runs end to end (docs/COMMAND_RUNS.md): a real PyTorch long-tailed training script
//! (examples/command-runs/lt_train.py) run as a command grid through the real daemon, one
//! program killed mid-way and resumed from its stored checkpoint directory, the daemon itself
//! killed and restarted, and the grid's rows in `cauda report` beside an engine experiment's;
//! programs that cannot start, fail, flood, stall, lie or die of GPU memory, each ending its run
//! with its reason while the daemon stays healthy; cancel stopping the program; and a daemon
//! that has not enabled command runs refusing them.

use crate::common;

use std::path::Path;
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(300);
const ENABLED: &str = "[commands]\nenabled = true\n";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

/// The pid of the program of the run's latest attempt, from its "started ... as pid N" line.
async fn program_pid(
    client: &mut cauda_proto::v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    id: u64,
) -> Option<u32> {
    log_lines(&events(client, id).await)
        .iter()
        .rev()
        .find_map(|l| {
            l.split(" as pid ")
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pytorch_grid_survives_a_program_kill_and_a_daemon_restart_and_is_reported() {
    let Some(python) = torch_python() else { return };
    let fmnist = Path::new("/usr/share/datasets/fashion-mnist");
    if !require(
        fmnist.join("train-images-idx3-ubyte.gz").is_file(),
        "no Fashion-MNIST in /usr/share/datasets/fashion-mnist",
        "apt-get install dataset-fashion-mnist",
    ) {
        return;
    }
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = format!("devices = [\"cpu:2\"]\nmax_retries = 2\n{ENABLED}");
    let mut first = Caudad::start(dir.path(), &config);
    let mut client = first.client().await;
    let spec = format!(
        r#"name = "torch-lt"
method = "ce"
python = "{python}"
[command]
argv = ["{{python}}", "examples/command-runs/lt_train.py", "--data", "{data}", "--seed", "{{seed}}",
        "--ratio", "{{ratio}}", "--epochs", "{{epochs}}", "--loss", "{{method}}",
        "--balanced", "{{balanced}}", "--n-max", "2000", "--min-epoch-seconds", "0.4"]
cwd = "{repo}"
[train]
seed = 1
epochs = 10
[data]
imbalance = {{ profile = "exp", ratio = 200 }}
[report]
relative_accuracy = true
[sweep]
"train.seed" = [1, 2]
"#,
        python = python.display(),
        data = fmnist.display(),
        repo = repo().display(),
    );
    // Through the CLI, as a user does: `cauda submit FILE`.
    let file = dir.path().join("torch-lt.toml");
    std::fs::write(&file, &spec).unwrap();
    let out = cauda_ok(&cli, &first.url, &["submit", file.to_str().unwrap()]);
    let label = |prefix: &str, word: &str| -> u64 {
        word.strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{word} in {out}"))
    };
    let experiment = label(
        "e-",
        out.split_whitespace().nth(1).unwrap().trim_end_matches(':'),
    );
    let ids: Vec<u64> = out
        .lines()
        .skip(1)
        .map(|l| label("r-", l.split_whitespace().next().unwrap()))
        .collect();
    assert_eq!(
        ids.len(),
        4,
        "2 seeds + one shared balanced CE reference per seed + balanced ce (the method is ce)"
    );

    // Kill the first run's program (not its worker) once two epochs are stored.
    let target = ids[0];
    wait_for(LIMIT, "two epochs of the first run", || {
        let mut c = client.clone();
        async move { (epochs(&mut c, target).await.len() >= 2).then_some(()) }
    })
    .await;
    let pid = program_pid(&mut client, target)
        .await
        .expect("the program's pid is logged");
    kill9(pid);

    // Then kill the daemon while the grid goes on, and restart it on the same data dir.
    wait_for(LIMIT, "the killed run's second attempt to report", || {
        let mut c = client.clone();
        async move {
            let run = get_run(&mut c, target).await;
            (run.attempt >= 2 && epochs(&mut c, target).await.len() >= 3).then_some(())
        }
    })
    .await;
    first.kill9();
    drop(client);
    let second = Caudad::start(dir.path(), &config);
    let mut client = second.client().await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_eq!(
            run.state(),
            v1::RunState::Succeeded,
            "r-{}: {}",
            run.run_id,
            run.error()
        );
        let got: Vec<u32> = epochs(&mut client, run.run_id)
            .await
            .iter()
            .map(|e| e.epoch)
            .collect();
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(
            unique,
            (1..=10).collect::<Vec<_>>(),
            "r-{} has every epoch once",
            run.run_id
        );
    }
    let killed = runs.iter().find(|r| r.run_id == target).unwrap();
    assert!(killed.attempt >= 2);
    let lines = log_lines(&events(&mut client, target).await);
    let failed_attempt = lines
        .iter()
        .any(|l| l.contains("killed by signal 9 (SIGKILL)"));
    assert!(
        failed_attempt,
        "the kill is the attempt's reason: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("restored the checkpoint directory of epoch")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("resumed from the checkpoint of epoch"))
    );

    // The report: one row over both seeds, with shot groups and relative accuracy.
    let addr = second.url.clone();
    let csv = cauda_ok(
        &cli,
        &addr,
        &["report", &experiment.to_string(), "--format", "csv"],
    );
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let row: Vec<&str> = rows.next().expect("a row").split(',').collect();
    let cell = |name: &str| {
        let at = header.iter().position(|h| *h == name);
        row[at.unwrap_or_else(|| panic!("{name} in {header:?}"))].trim_matches('"')
    };
    assert_eq!(cell("method"), "ce");
    assert_eq!(cell("seeds"), "2");
    for name in ["top1_mean", "many", "medium", "few", "relative_accuracy"] {
        let v: f64 = cell(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {:?}", cell(name)));
        assert!((0.0..=1.5).contains(&v), "{name} = {v}");
    }
    // `cauda plot` draws the command runs' per-class accuracy like an engine run's.
    let svg = dir.path().join("per-class.svg");
    cauda_ok(
        &cli,
        &addr,
        &[
            "plot",
            &experiment.to_string(),
            "--out",
            svg.to_str().unwrap(),
        ],
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.contains("<svg") && drawn.contains("ce"),
        "{}",
        &drawn[..drawn.len().min(300)]
    );
    // Beside an engine experiment: `cauda compare` puts both side by side.
    let engine = submit(&mut client, &tiny_spec("engine", 2, "")).await;
    let engine_ids: Vec<u64> = engine.runs.iter().map(|r| r.run_id).collect();
    wait_all_done(&mut client, &engine_ids, LIMIT).await;
    let compared = cauda_ok(
        &cli,
        &addr,
        &[
            "compare",
            &experiment.to_string(),
            &engine.experiment_id.to_string(),
        ],
    );
    // One row per (method, ratio): the command grid's (ratio 200) and the engine's (ratio 10).
    assert!(
        compared.contains("200") && compared.contains("10"),
        "{compared}"
    );
}

/// One command run with `argv` (and extra `[command]` keys), waited to its end.
async fn ended(
    client: &mut cauda_proto::v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    name: &str,
    command: &str,
    extra: &str,
) -> v1::Run {
    let spec = format!("name = \"{name}\"\n{extra}\n[command]\n{command}\n");
    let ids = submit_ids(client, &spec).await;
    wait_all_done(client, &ids, LIMIT).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_programs_end_their_runs_with_a_reason_and_the_daemon_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("devices = [\"cpu:2\", \"gpu:1@16000\"]\nmax_retries = 0\n{ENABLED}");
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;
    // Braces are doubled in a command (single ones are placeholders).
    let report = r#"echo '{{"v":1,"type":"epoch","epoch":1,"train_loss":0.5,"test_top1":0.75,"per_class":[1.0,0.5],"class_counts":[200,10]}}' >&3"#;
    let cases = [
        ("missing", r#"argv = ["/nonexistent/train.py"]"#.to_string(), "cannot start `/nonexistent/train.py` (command.argv[0])"),
        ("nonzero", r#"argv = ["sh", "-c", "echo boom >&2; exit 3"]"#.into(), "exited with status 3; its last output on stderr:\nboom"),
        ("flood", "argv = [\"sh\", \"-c\", \"yes flood\"]\nmax_output_mb = 1".into(), "wrote more than 1 MiB to stdout and stderr (command.max_output_mb)"),
        ("silent", "argv = [\"sleep\", \"60\"]\nreport_timeout_s = 2".into(), "no report line for 2 s (command.report_timeout_s)"),
        ("liar", r#"argv = ["sh", "-c", "echo '{{\"v\":1,\"type\":\"epoch\",\"epoch\":1,\"train_loss\":1,\"acc\":2}}' >&3"]"#.into(), "report line 1: unknown field `acc`"),
        ("mute", r#"argv = ["true"]"#.into(), "exited 0 without reporting an evaluated epoch"),
    ];
    for (name, command, reason) in &cases {
        let run = ended(&mut client, name, command, "").await;
        assert_eq!(run.state(), v1::RunState::Failed, "{name}");
        assert!(run.error().contains(reason), "{name}: {:?}", run.error());
    }
    // Out of GPU memory on a share: requeued once with a larger reservation, then failed.
    let oom = ended(
        &mut client,
        "oom",
        r#"argv = ["sh", "-c", "echo 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB' >&2; exit 1"]"#,
        "[resources]\ngpu_share = 0.5\ngpu_mem_mb = 2000",
    )
    .await;
    assert_eq!(oom.state(), v1::RunState::Failed);
    assert_eq!(
        oom.attempt,
        2,
        "one OOM requeue, not counted as a retry: {}",
        oom.error()
    );
    // Healthy: a good program still runs, reports and succeeds; its extra metric is stored.
    let good = ended(
        &mut client,
        "good",
        &format!("argv = [\"sh\", \"-c\", {report:?}]"),
        "",
    )
    .await;
    assert_eq!(good.state(), v1::RunState::Succeeded, "{}", good.error());
    let metrics = epochs(&mut client, good.run_id).await;
    let eval = metrics[0].eval.clone().unwrap();
    assert_eq!(
        (eval.test_top1, eval.many, eval.few),
        (0.75, Some(1.0), Some(0.5))
    );
    // A program reports accuracies, not logits: its summary has no confusion matrix, and
    // `cauda plot --kind confusion` says why it has nothing to draw (a usage error, exit 2).
    let summary = good.summary.as_ref().expect("a summary");
    assert_eq!(summary.confusion, None);
    if let Some(cli) = cauda_bin() {
        let out = std::process::Command::new(cli)
            .args([
                "--addr",
                &daemon.url,
                "plot",
                &format!("e-{}", good.experiment_id),
            ])
            .args(["--kind", "confusion", "--out"])
            .arg(dir.path().join("m.svg"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("no succeeded run with a confusion matrix")
                && err.contains("command runs"),
            "{err}"
        );
    }

    // Cancel stops the program, not only its worker.
    let spec = "name = \"long\"\n[command]\nargv = [\"sh\", \"-c\", \"echo $$ > {run_dir}/pid; exec sleep 120\"]\n";
    let id = submit_ids(&mut client, spec).await[0];
    let pid_file = dir.path().join(format!("data/runs/r-{id}/pid"));
    let pid: u32 = wait_for(LIMIT, "the program's pid file", || {
        let f = pid_file.clone();
        async move {
            std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        }
    })
    .await;
    assert!(alive(pid));
    client.cancel_run(cancel_request(id)).await.unwrap();
    wait_for(LIMIT, "the cancelled program to be gone", || async move {
        (!alive(pid)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_runs_are_refused_unless_the_daemon_enables_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\n");
    let mut client = daemon.client().await;
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: "name = \"x\"\n\n[command]\nargv = [\"true\"]\n".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("[commands] enabled = true"),
        "{}",
        err.message()
    );
    let listed = client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.runs.is_empty(), "nothing was stored");
}
