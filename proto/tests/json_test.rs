//! The generated serde of the `cauda.v1` messages, which every `cauda --json` output prints:
//! the proto3 JSON mapping with the `.proto` field names, every plain field written, absent
//! optional fields left out, and a class without test images as null.

use cauda_proto::v1::{EpochMetrics, EvalMetrics, Run, RunState};
use serde_json::{Value, json};

#[test]
fn a_run_names_its_state_and_writes_64_bit_ids_as_strings() {
    let run = Run {
        run_id: 5,
        experiment_id: 2,
        state: RunState::Succeeded.into(),
        config_json: r#"{"lr":0.1}"#.into(),
        started_at_ms: Some(1_700_000_000_000),
        ..Default::default()
    };
    let v = serde_json::to_value(&run).unwrap();
    assert_eq!(v["run_id"], "5");
    assert_eq!(v["experiment_id"], "2");
    assert_eq!(v["state"], "RUN_STATE_SUCCEEDED");
    assert_eq!(v["config_json"], r#"{"lr":0.1}"#);
    assert_eq!(v["started_at_ms"], "1700000000000");
    // Plain fields are written even at their default; absent optional ones are not.
    assert_eq!(v["attempt"], 0);
    assert_eq!(v["error"], Value::Null);
    assert!(v.get("finished_at_ms").is_none());
    let back: Run = serde_json::from_value(v).unwrap();
    assert_eq!(back, run);
}

#[test]
fn a_class_without_test_images_is_null() {
    let epoch = EpochMetrics {
        stage: 1,
        epoch: 3,
        eval: Some(EvalMetrics {
            test_top1: 0.5,
            per_class: vec![0.5, f32::NAN],
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = serde_json::to_value(&epoch).unwrap();
    assert_eq!(v["eval"]["per_class"], json!([0.5, null]));
    assert!(v["eval"].get("many").is_none());
}
