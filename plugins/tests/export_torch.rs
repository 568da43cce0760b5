//! A trained run's safetensors export, loaded by PyTorch into `bench/reference.py`'s model,
//! gives the logits cauda computes on the same images (max |difference| < 1e-4). Each test
//! trains a tiny run on the embedded digits (2 epochs), exports its last checkpoint, and runs
//! `bench/export_check.py` with the project's PyTorch venv; without the venv it checks the
//! export's names against the model and prints why the PyTorch half was skipped (a failure
//! under `CAUDA_REQUIRE_ALL`, as in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use cauda_plugins::export::{
    ExportFormat, ExportOptions, case_from_images, export, pytorch_tensors, rebuild,
};
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::{self, Checkpoint, EpochRecord, EventSink, TrainError};

mod common;
const TOLERANCE: f64 = 1e-4;

#[derive(Default)]
struct Last(Option<Checkpoint>);

impl EventSink for Last {
    fn on_epoch(&mut self, _: &EpochRecord) -> Result<(), TrainError> {
        Ok(())
    }
    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        self.0 = Some(checkpoint.clone());
        Ok(())
    }
}

fn resolve(method: &str, backbone: &str, extra: &str) -> ResolvedRun {
    let text = format!(
        r#"name = "export-{backbone}"
method = "{method}"
[data]
format = "digits"
imbalance = {{ profile = "exp", ratio = 10 }}
[model]
backbone = "{backbone}"
[train]
epochs = 2
batch_size = 64
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
{extra}"#
    );
    let spec = ExperimentSpec::parse("export.toml", &text).unwrap();
    spec.resolve("export.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap()
}

/// Runs bench/export_check.py; `None` (and a printed reason) when the venv is absent.
fn torch_max_diff(model: &Path, case: &Path) -> Option<f64> {
    let python = common::venv_python("the PyTorch half")?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/export_check.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(case)
        .args(["--tol", &TOLERANCE.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run export_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    println!("{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "export_check.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Some(v["max_abs_diff"].as_f64().expect("max_abs_diff"))
}

/// Trains `run`, exports its last checkpoint, and compares with PyTorch; returns the names.
fn check(run: &ResolvedRun) -> Vec<String> {
    let data = train::prepare(&run.data).unwrap();
    let mut sink = Last::default();
    let device = Device::default();
    let summary = train::train(run, &data, &builtin_registry(), &device, None, &mut sink).unwrap();
    let ck = sink.0.expect("a checkpoint");
    let tau = summary.tau_sweep.as_ref().map(|s| s.chosen);
    let opts = ExportOptions { tau };
    let bytes = export(run, &ck.to_bytes(), ExportFormat::Safetensors, &opts).unwrap();

    let mut model = rebuild(run, &ck, &device).unwrap();
    if let Some(tau) = tau {
        model.head = model.head.tau_normalized(tau);
    }
    let names: Vec<String> = pytorch_tensors(&model)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut stored = st.names();
    stored.sort();
    assert_eq!(stored, names.iter().collect::<Vec<_>>());

    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.safetensors");
    let case_path = dir.path().join("case.json");
    std::fs::write(&model_path, &bytes).unwrap();
    let case = case_from_images(&model, &data.test.head(64).unwrap(), &data.norm, 64).unwrap();
    std::fs::write(&case_path, serde_json::to_vec(&case).unwrap()).unwrap();
    if let Some(diff) = torch_max_diff(&model_path, &case_path) {
        assert!(
            diff < TOLERANCE,
            "{}: max |logit difference| {diff}",
            run.name
        );
    }
    names
}

#[test]
fn lenet_linear_export_matches_pytorch() {
    let _ = check(&resolve("ce", "lenet", ""));
}

#[test]
fn resnet8_batchnorm_export_matches_pytorch() {
    // Option A: the parameter-free shortcut (odd 8 -> 4 -> 2 maps on the digits) in both.
    let names = check(&resolve("ce", "resnet8", ""));
    assert!(!names.iter().any(|n| n.contains("shortcut")), "{names:?}");
}

#[test]
fn resnet8b_projection_shortcut_export_matches_pytorch() {
    let names = check(&resolve("ce", "resnet8b", ""));
    assert!(
        names.iter().any(|n| n.ends_with("shortcut.0.weight")),
        "{names:?}"
    );
}

#[test]
fn resnet8_cosine_head_export_matches_pytorch() {
    let _ = check(&resolve(
        "ce",
        "resnet8",
        "[module]\nclassifier = { name = \"cosine\", scale = 16.0 }\n",
    ));
}

#[test]
fn lws_stage2_scales_export_matches_pytorch() {
    let names = check(&resolve(
        "lws",
        "mlp",
        "[module]\nstage2 = { name = \"lws\", epochs = 1 }\n",
    ));
    assert!(names.iter().any(|n| n == "head.scales"), "{names:?}");
}

#[test]
fn tau_norm_export_carries_the_chosen_tau() {
    let names = check(&resolve("tau-norm", "mlp", ""));
    assert!(!names.iter().any(|n| n == "head.bias"), "{names:?}");
}
