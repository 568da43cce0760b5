//! `caudad serve` as a user meets it: the real binary on 127.0.0.1 port 0 with a sled data dir,
//! real workers, driven by the real `cauda` client binary: submit --wait, ls, show, watch, logs,
//! metrics, checkpoint, cancel, devices, plugins, bad input and exit codes, and the runs still
//! there after a restart.

use crate::common;

use std::process::{Command, Output};

use common::*;

fn cauda(addr: &str, args: &[&str]) -> Output {
    Command::new(cauda_bin().expect("cauda binary"))
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .expect("cauda runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

#[test]
fn the_cauda_client_drives_a_live_daemon() {
    if cauda_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = [\"cpu:2\"]\n";
    let spec_path = dir.path().join("grid.toml");
    std::fs::write(
        &spec_path,
        tiny_spec("cli", 4, "[sweep]\nmethod = [\"ce\", \"ldam-drw\"]\n"),
    )
    .unwrap();
    let spec = spec_path.to_str().unwrap();
    let daemon = Caudad::start(dir.path(), config);
    let addr = daemon.url.clone();

    let out = ok(cauda(&addr, &["submit", spec, "--wait"]));
    assert!(out.starts_with("experiment e-1: 2 runs"), "{out}");
    assert!(out.contains("r-1") && out.contains("r-2"), "{out}");

    let ls: serde_json::Value = serde_json::from_str(&ok(cauda(&addr, &["ls", "--json"]))).unwrap();
    let runs = ls.as_array().expect("a JSON array");
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter().all(|r| r["state"] == "RUN_STATE_SUCCEEDED"),
        "{ls}"
    );

    let show = ok(cauda(&addr, &["show", "r-2"]));
    assert!(
        show.contains("cli/method=ldam-drw") && show.contains("succeeded"),
        "{show}"
    );

    let watch = ok(cauda(&addr, &["watch", "r-1"]));
    assert!(watch.contains("succeeded"), "{watch}");

    let logs = ok(cauda(&addr, &["logs", "r-1"]));
    assert!(logs.contains("epoch 4/4 stage 1"), "{logs}");
    assert!(logs.contains("worker pid"), "{logs}");

    let csv = ok(cauda(&addr, &["metrics", "r-1", "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("stage,epoch,train_loss"), "{csv}");
    assert_eq!(lines.len(), 5, "a header and one row per epoch: {csv}");
    assert!(lines[4].starts_with("1,4,"), "{csv}");

    let file = dir.path().join("r1.ckpt");
    ok(cauda(
        &addr,
        &["checkpoint", "r-1", "--out", file.to_str().unwrap()],
    ));
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"CAUDACK1"));

    let devices = ok(cauda(&addr, &["devices"]));
    assert!(
        devices.contains("cpu:0") && devices.contains("cpu:1"),
        "{devices}"
    );
    let plugins = ok(cauda(&addr, &["plugins"]));
    assert!(plugins.contains("ldam"), "{plugins}");
    // The methods, with their place in the survey's taxonomy; a sub-family filters them.
    assert!(
        plugins.contains("class-re-balancing") && plugins.contains("logit-adjustment"),
        "{plugins}"
    );
    let la = ok(cauda(&addr, &["plugins", "--family", "logit-adjustment"]));
    assert!(la.contains("vs-loss") && !la.contains("crt"), "{la}");

    // Bad input: a spec error names the key (exit 5), an unknown run is not found (exit 4),
    // cancelling a finished run changes nothing.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        tiny_spec("bad", 4, "").replace("epochs = 4", "epochs = -1"),
    )
    .unwrap();
    let out = cauda(&addr, &["submit", bad.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train.epochs"), "{err}");
    assert_eq!(cauda(&addr, &["show", "r-99"]).status.code(), Some(4));
    ok(cauda(&addr, &["cancel", "r-1"]));
    assert!(ok(cauda(&addr, &["show", "r-1"])).contains("succeeded"));

    // A restart keeps everything, and finished runs are not run again.
    drop(daemon);
    let daemon = Caudad::start(dir.path(), config);
    let addr = daemon.url.clone();
    let ls = ok(cauda(&addr, &["ls"]));
    assert_eq!(ls.matches("succeeded").count(), 2, "{ls}");
    assert!(daemon.workers().is_empty(), "nothing was relaunched");
    let csv = ok(cauda(&addr, &["metrics", "r-2", "--format", "csv"]));
    assert_eq!(csv.lines().count(), 5, "{csv}");
}
