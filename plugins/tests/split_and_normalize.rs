//! `data.split_file` and `data.normalize` end to end: a spec resolves (or is refused naming the
//! key), the split file is pinned into the run (its content is part of the config hash), and
//! `prepare` trains on exactly the file's images with the given constants, refusing a file that
//! changed after it was pinned.

use std::path::Path;

use cauda_plugins::data::digits;
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::{config_hash, prepare};

fn resolve(data: &str) -> Result<ResolvedRun, String> {
    let text = format!("name = \"s\"\n[data]\nformat = \"digits\"\n{data}\n");
    ExperimentSpec::parse("s.toml", &text)
        .and_then(|s| s.resolve("s.toml", &PresetBook::builtin(), &builtin_registry()))
        .map_err(|e| e.to_string())
}

/// A split file selecting, per digit class, the class's images at ranks 4, 0, 2 (in that order).
fn write_ranks(path: &Path) {
    let ranks: Vec<Vec<usize>> = (0..10).map(|_| vec![4, 0, 2]).collect();
    let body = serde_json::json!({"version": 1, "num_classes": 10, "ranks": ranks});
    std::fs::write(path, body.to_string()).unwrap();
}

#[test]
fn a_split_file_selects_the_training_images_and_normalize_fixes_the_constants() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("digits-split.json");
    write_ranks(&file);
    let mut run = resolve(&format!(
        "split_file = {:?}\nval_per_class = 3\nnormalize = {{ mean = [0.5], std = [0.25] }}",
        file.display().to_string()
    ))
    .unwrap();
    run.data.pin_split_file().unwrap();
    assert_eq!(run.data.split_file_sha256.as_ref().unwrap().len(), 64);
    let data = prepare(&run.data).unwrap();
    assert_eq!(data.class_counts, vec![3; 10]);
    let labels = digits::load().unwrap().train.labels;
    let of_class =
        |c: u32| -> Vec<usize> { (0..labels.len()).filter(|&i| labels[i] == c).collect() };
    let want: Vec<usize> = (0..10)
        .flat_map(|c| {
            let all = of_class(c);
            [all[4], all[0], all[2]]
        })
        .collect();
    assert_eq!(data.train_indices, want);
    // The hold-out comes from the images the file did not select.
    assert_eq!(data.val_indices.len(), 30);
    assert!(data.val_indices.iter().all(|i| !want.contains(i)));
    assert_eq!(
        (data.norm.mean.clone(), data.norm.std.clone()),
        (vec![0.5], vec![0.25])
    );
    // split.json carries the constants for bench/reference.py.
    let split = data.split_file(&run.data);
    assert_eq!(split.mean, vec![0.5]);

    // Another file at the same path is another run, and the pinned run refuses it.
    let before = config_hash(&run);
    std::fs::write(
        &file,
        r#"{"version": 1, "num_classes": 10, "ranks": [[0],[0],[0],[0],[0],[0],[0],[0],[0],[1]]}"#,
    )
    .unwrap();
    let err = prepare(&run.data).unwrap_err().to_string();
    assert!(
        err.contains("digits-split.json") && err.contains("changed since"),
        "{err}"
    );
    let mut again = run.clone();
    again.data.split_file_sha256 = None;
    again.data.pin_split_file().unwrap();
    assert_ne!(config_hash(&again), before);
}

#[test]
fn a_spec_without_the_new_keys_keeps_its_config_hash_json() {
    // `normalize = "fit"` and no split file are left out of the stored JSON, so runs submitted
    // before these keys existed keep their config hash.
    let run = resolve("imbalance = { profile = \"exp\", ratio = 10 }").unwrap();
    let json = run.to_json();
    assert!(
        !json.contains("normalize") && !json.contains("split_file"),
        "{json}"
    );
    let fit =
        resolve("imbalance = { profile = \"exp\", ratio = 10 }\nnormalize = \"fit\"").unwrap();
    assert_eq!(config_hash(&run), config_hash(&fit));
    assert!(!json.contains("holdout_rule"), "{json}");
    // A validation hold-out names its rule: runs cut by the earlier rule are other runs.
    let val = resolve("val_per_class = 5").unwrap();
    assert_eq!(val.holdout_rule, Some(cauda_plugins::spec::HOLDOUT_RULE));
    let mut old = val.clone();
    old.holdout_rule = None;
    assert_ne!(config_hash(&val), config_hash(&old));
    assert_eq!(ResolvedRun::from_json("v", &val.to_json()).unwrap(), val);
}

#[test]
fn bad_combinations_are_refused_naming_the_key() {
    let cases = [
        (
            "split_file = \"/x.json\"\nimbalance = { profile = \"exp\", ratio = 10 }",
            "data.imbalance",
        ),
        (
            "split_file = \"/x.json\"\nmax_per_class = 10",
            "data.max_per_class",
        ),
        (
            "split_file_sha256 = \"00\"",
            "data.split_file_sha256: pins a split file",
        ),
        (
            "split_file = \"/x.json\"\nsplit_file_sha256 = \"ABC\"",
            "64 lowercase hex digits",
        ),
        (
            "normalize = \"cifar10\"",
            "data.normalize: 3 channel(s) given, but the data has 1",
        ),
        ("normalize = { mean = [0.5], std = [0.0] }", "std[0]"),
        ("normalize = \"imagenet\"", "unknown normalize `imagenet`"),
    ];
    for (data, want) in cases {
        let err = resolve(data).unwrap_err();
        assert!(err.contains(want), "{data}\n  gave: {err}\n  want: {want}");
    }
    // A missing split file is an error naming it when the run is pinned.
    let mut run = resolve("split_file = \"/nonexistent/split.json\"").unwrap();
    let err = run.data.pin_split_file().unwrap_err().to_string();
    assert!(err.contains("/nonexistent/split.json"), "{err}");
}
