//! `caudad train` as a user runs it: the real binary on real spec files.

use std::process::Command;

fn caudad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caudad"))
}

#[test]
fn a_spec_trains_and_prints_one_json_line_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(
        &spec,
        "name = \"t\"\nmethod = \"balanced-softmax\"\n[data]\nformat = \"digits\"\nimbalance = { profile = \"exp\", ratio = 10 }\n[model]\nbackbone = \"mlp\"\n[train]\nepochs = 3\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = caudad()
        .arg("train")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for (i, l) in lines[..3].iter().enumerate() {
        assert_eq!(l["epoch"], i + 1, "epochs count from 1");
        assert!(l["eval"]["test_top1"].as_f64().unwrap() > 0.0);
    }
    assert!(lines[3]["summary"]["last"]["few"].is_number());
    for f in [
        "checkpoint.bin",
        "split.json",
        "summary.json",
        "config.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(split["class_counts"][0], 143);

    // Resuming a finished run's last checkpoint trains nothing more and reports the same result.
    let o2 = caudad()
        .arg("train")
        .arg(&spec)
        .arg("--resume")
        .arg(out.join("checkpoint.bin"))
        .output()
        .unwrap();
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let last: serde_json::Value = serde_json::from_str(
        String::from_utf8(o2.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        last["summary"]["last"]["test_top1"],
        lines[3]["summary"]["last"]["test_top1"]
    );
}

#[test]
fn a_bad_spec_fails_with_the_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, "name = \"t\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"lenet\"\nhead = \"linear\"\nheads = 3\n").unwrap();
    let o = caudad().arg("train").arg(&spec).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 7") && err.contains("heads"),
        "{err}"
    );

    std::fs::write(&spec, "name = \"t\"\n[data]\nformat = \"idx\"\n").unwrap();
    let o = caudad().arg("train").arg(&spec).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("data.path"), "{err}");

    std::fs::write(
        &spec,
        "name = \"t\"\n[data]\nformat = \"idx\"\npath = \"/nonexistent/fmnist\"\n",
    )
    .unwrap();
    let o = caudad().arg("train").arg(&spec).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/nonexistent/fmnist"),
        "{err}"
    );
}

#[test]
fn every_example_spec_parses_and_resolves() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // caudad.toml is the daemon's config, parsed by the config module's own test.
        if path.extension().is_some_and(|e| e == "toml") && !path.ends_with("caudad.toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let origin = path.display().to_string();
            let spec = cauda_plugins::spec::ExperimentSpec::parse(&origin, &text).unwrap();
            let presets = cauda_plugins::spec::PresetBook::builtin();
            let registry = cauda_plugins::registry::builtin_registry();
            for run in cauda_plugins::spec::expand_sweep(&origin, &spec).unwrap() {
                run.spec
                    .resolve(&origin, &presets, &registry)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

#[test]
fn plugins_lists_every_family_with_parameters_and_papers() {
    let o = caudad().args(["plugins", "--json"]).output().unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    for family in ["sampler", "loss", "rebalance", "augment", "module"] {
        assert!(plugins.iter().any(|p| p["family"] == family), "{family}");
    }
    let ldam = plugins.iter().find(|p| p["name"] == "ldam").unwrap();
    assert_eq!(ldam["params"][1]["name"], "s");
    assert_eq!(ldam["params"][1]["default"], 30.0);
    assert!(ldam["paper"].as_str().unwrap().contains("NeurIPS 2019"));
    assert_eq!(
        v["presets"].as_array().unwrap().len(),
        cauda_plugins::spec::PresetBook::builtin().names().len()
    );
}
