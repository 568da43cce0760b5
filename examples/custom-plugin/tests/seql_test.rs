//! The example crate from the outside: its loss against PyTorch (`fixtures/seql.py` ->
//! `fixtures/seql.json`: values and gradients through cauda's batch reduction), its daemon
//! binary listing it, and the crate using nothing of cauda but its public API.

use std::path::Path;
use std::process::Command;

use burn::tensor::{Device, Int, Tensor, TensorData};
use cauda_custom_plugin::{ORIGIN, SEQL, SoftmaxEql};
use cauda_plugins::losses::{Loss, Mixup, combine};
use cauda_plugins::registry::Kind;
use serde::Deserialize;

const FIXTURE: &str = include_str!("../fixtures/seql.json");
/// |got - want| <= TOL * (1 + |want|), as cauda's own loss fixtures.
const TOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n: usize,
    c: usize,
    counts: Vec<f64>,
    logits: Vec<f64>,
    labels_a: Vec<i64>,
    labels_b: Vec<i64>,
    lam: Vec<f64>,
}

#[derive(Deserialize)]
struct Record {
    case: String,
    lambda: f64,
    per_sample: Vec<f64>,
    hard: Eval,
    mixup: Eval,
}

#[derive(Deserialize)]
struct Eval {
    value: f64,
    grad: Vec<f64>,
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn to_f64(t: Tensor<1>) -> Vec<f64> {
    let v: Vec<f32> = t.into_data().try_to_vec().expect("f32 tensor");
    v.into_iter().map(f64::from).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Value and dL/dz of cauda's batch reduction over the loss, through Burn's autodiff.
fn value_and_grad(loss: &dyn Loss, c: &Case, mixup: bool) -> (f64, Vec<f64>) {
    let device = Device::default().autodiff();
    let ints = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [c.n]), &device);
    let logits = Tensor::<2>::from_data(TensorData::new(f32s(&c.logits), [c.n, c.c]), &device)
        .require_grad();
    let mix = mixup.then(|| Mixup {
        labels_b: ints(&c.labels_b),
        lam: Tensor::<1>::from_floats(f32s(&c.lam).as_slice(), &device),
    });
    let l = combine(loss, logits.clone(), ints(&c.labels_a), mix, 0).expect("combine");
    let grads = l.backward();
    let g = logits.grad(&grads).expect("logits have a gradient");
    (to_f64(l.detach())[0], to_f64(g.reshape([c.n * c.c])))
}

#[test]
fn the_loss_matches_pytorch_values_and_gradients() {
    let f: Fixture = serde_json::from_str(FIXTURE).expect("seql.json parses");
    assert_eq!(f.records.len(), 8, "every case and threshold");
    let device = Device::default();
    for r in &f.records {
        let c = f.cases.iter().find(|c| c.name == r.case).expect("case");
        let counts: Vec<usize> = c.counts.iter().map(|&n| n as usize).collect();
        let loss = SoftmaxEql::new(&counts, r.lambda).expect("valid");
        let tag = format!("seql lambda={} on {}", r.lambda, r.case);
        let logits = Tensor::<2>::from_data(TensorData::new(f32s(&c.logits), [c.n, c.c]), &device);
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(c.labels_a.clone(), [c.n]), &device);
        let per = to_f64(loss.per_sample(logits, labels));
        assert_close(&format!("{tag}: per_sample"), &per, &r.per_sample);
        for (mixup, want) in [(false, &r.hard), (true, &r.mixup)] {
            let (v, g) = value_and_grad(&loss, c, mixup);
            assert_close(&format!("{tag} mixup={mixup}: value"), &[v], &[want.value]);
            assert_close(&format!("{tag} mixup={mixup}: grad"), &g, &want.grad);
        }
    }
}

#[test]
fn the_registry_builds_it_under_this_crate_s_name() {
    let registry = cauda_custom_plugin::registry().expect("registry");
    assert_eq!(registry.origin(Kind::Loss, SEQL), Some(ORIGIN));
    assert!(ORIGIN.starts_with("cauda-custom-plugin "), "{ORIGIN}");
    // Its parameter is range-checked like any plugin's, the error naming the key.
    let err = registry
        .validated(Kind::Loss, SEQL, &[("lambda", 2.0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("seql.lambda"), "{err}");
    let engine = cauda_custom_plugin::engine().expect("engine");
    assert!(engine.presets().get("seql").is_some());
    assert!(engine.fingerprint().ends_with(&format!(" + {ORIGIN}")));
}

#[test]
fn its_daemon_binary_lists_the_loss_the_preset_and_the_engine() {
    let out = Command::new(env!("CARGO_BIN_EXE_caudad-seql"))
        .args(["plugins", "--json"])
        .output()
        .expect("run caudad-seql plugins");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let seql = listed["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == SEQL)
        .expect("seql is listed");
    assert_eq!(seql["family"], "loss");
    assert_eq!(seql["origin"], ORIGIN);
    assert!(seql["paper"].as_str().unwrap_or("").contains("Tan et al."));
    let presets = listed["presets"].as_array().expect("presets");
    assert!(presets.iter().any(|p| p["name"] == "seql"));
    assert!(
        presets.iter().any(|p| p["name"] == "ldam-drw"),
        "cauda's own too"
    );
    assert!(listed["engine"].as_str().unwrap_or("").ends_with(ORIGIN));
}

/// The point of the example: it builds against cauda's public API only, so it builds the same
/// out of cauda's tree. Nothing here includes, or points a module path at, a file outside it.
#[test]
fn nothing_reaches_outside_the_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![root.join("src"), root.join("tests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    // Split so that this file does not match itself.
    let (up_two, module_path) = (concat!("\"../", "../"), concat!("#[", "path"));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let reaches_out = line.contains(up_two) || line.contains(module_path);
            assert!(!reaches_out, "{}: {line}", file.display());
        }
    }
}
