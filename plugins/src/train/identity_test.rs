//! The canonical form of a run's identity, pinned: a change to any of these literals changes the
//! hash of every stored run, so the daemon would train everything again.

use serde_json::{Map, Value, json};

use super::*;
use crate::train::engine_fingerprint;

/// A resolved run (cRT on a long-tailed IDX set) as a daemon stores it, with a fixed engine so
/// that bumping `RECIPE_VERSION` does not move the pinned hashes below. `head_scale` is an `f32`
/// that `f64` cannot hold exactly: its text is part of what is pinned.
const FIXED: &str = r#"{
  "name": "fixed/method=crt",
  "method": "crt",
  "data": {"format": "idx", "path": "/data/fmnist", "imbalance": {"profile": "exp", "ratio": 100.0}, "max_per_class": 1000, "val_per_class": 0, "split_seed": 0, "balanced_variant": false},
  "model": {"backbone": "lenet", "head": "linear", "head_scale": 12.3},
  "train": {"epochs": 30, "batch_size": 128, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": false, "weight_decay": 0.0005, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, "schedule": {"name": "cosine", "warmup_epochs": 1, "milestones": [], "gamma": 0.1}, "seed": 7, "eval_every": 1, "checkpoint_every": 1},
  "sampler": {"plugin": "instance", "values": {}},
  "loss": {"plugin": "ce", "values": {}},
  "drw": null,
  "posthoc": null,
  "crop_flip": true,
  "pad": 4,
  "mixer": null,
  "stage2": {"name": "crt", "params": {"plugin": "crt", "values": {"epochs": 10.0, "lr": 0.05}}},
  "metrics": {"many_threshold": 100, "few_threshold": 20},
  "resources": {"gpus": 0, "gpu_share": 0.5, "priority": 0},
  "engine": "cauda-plugins 0.0.0 recipe 0"
}"#;

/// `config_hash` of `FIXED`.
const FIXED_HASH: &str = "d2c962fb10d134a6da16eb7cf6db70cc7725af0dae044f28c2a2ddc6a3eed171";

/// `config_hash` of `FIXED` without its engine, as stored before fingerprints: the value the code
/// before `canonical_json` computed (serde_json's sorted map), so stored runs keep their hashes.
const FIXED_HASH_BEFORE_FINGERPRINTS: &str =
    "c5e0a063d44e5159df524085f949b84cf509d9c0d752b1a4a2f2d30035fa2e31";

fn fixed() -> ResolvedRun {
    ResolvedRun::from_json("fixed", FIXED).expect("FIXED is a resolved run")
}

#[test]
fn the_hash_of_a_fixed_run_is_pinned() {
    let run = fixed();
    assert_eq!(run.engine, "cauda-plugins 0.0.0 recipe 0");
    assert_eq!(config_hash(&run), FIXED_HASH);
    let before = ResolvedRun {
        engine: String::new(),
        ..run
    };
    assert!(!before.to_json().contains("engine"), "empty is not written");
    assert_eq!(config_hash(&before), FIXED_HASH_BEFORE_FINGERPRINTS);
}

#[test]
fn key_order_in_the_input_does_not_change_the_hash() {
    // The same run with its keys written in reverse order at every depth.
    fn reversed(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                keys.reverse();
                let fields: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::from(k.as_str()), reversed(&map[k])))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(reversed).collect();
                format!("[{}]", items.join(","))
            }
            other => other.to_string(),
        }
    }
    let text = reversed(&serde_json::from_str(FIXED).unwrap());
    assert!(text.starts_with("{\"train\":"), "{text}");
    let run = ResolvedRun::from_json("reversed", &text).unwrap();
    assert_eq!(config_hash(&run), FIXED_HASH);
}

#[test]
fn canonical_text_sorts_keys_at_every_depth_and_writes_numbers_one_way() {
    // Inserted out of order: with `serde_json/preserve_order` the map keeps this order.
    let mut inner = Map::new();
    inner.insert("y".into(), json!(1e-5));
    inner.insert("w".into(), json!(1e-8));
    inner.insert("x".into(), json!(100.0));
    inner.insert("é".into(), json!(0.1));
    inner.insert("Z".into(), json!(-3));
    let mut outer = Map::new();
    outer.insert("b".into(), json!([Value::Object(inner), 2.5e20, u64::MAX]));
    outer.insert("a".into(), json!("quote \" and\nnewline"));
    outer.insert("c".into(), json!({"t": true, "n": null}));
    assert_eq!(
        canonical_json(&Value::Object(outer)),
        r#"{"a":"quote \" and\nnewline","b":[{"Z":-3,"w":1e-8,"x":100.0,"y":0.00001,"é":0.1},2.5e+20,18446744073709551615],"c":{"n":null,"t":true}}"#
    );
}

#[test]
fn the_engine_is_identity_and_labels_are_not() {
    let run = fixed();
    let other_engine = ResolvedRun {
        engine: engine_fingerprint(),
        ..run.clone()
    };
    assert_ne!(config_hash(&other_engine), config_hash(&run));
    let mut relabelled = run.clone();
    relabelled.name = "another/point".into();
    relabelled.method = "renamed".into();
    relabelled.resources.priority = 9;
    assert_eq!(config_hash(&relabelled), config_hash(&run));
    // One GPU (or a share of one) trains what the CPU trains; two or more train data-parallel,
    // with per-shard BatchNorm statistics: another model, so another identity per count.
    let mut one = run.clone();
    one.resources.gpus = 1;
    one.resources.gpu_share = None;
    assert_eq!(config_hash(&one), config_hash(&run));
    let mut two = run.clone();
    two.resources.gpus = 2;
    let mut four = run.clone();
    four.resources.gpus = 4;
    assert_ne!(config_hash(&two), config_hash(&run));
    assert_ne!(config_hash(&two), config_hash(&four));
}

#[test]
fn only_a_run_of_this_engine_is_trained() {
    let mut run = fixed();
    let err = check_engine(&run).unwrap_err().to_string();
    assert!(
        err.contains("`cauda-plugins 0.0.0 recipe 0`") && err.contains(&engine_fingerprint()),
        "{err}"
    );
    run.engine = String::new();
    let err = check_engine(&run).unwrap_err().to_string();
    assert!(err.contains("before engine fingerprints"), "{err}");
    run.engine = engine_fingerprint();
    check_engine(&run).expect("this engine's run");
}
