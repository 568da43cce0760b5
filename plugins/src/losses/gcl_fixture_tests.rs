//! Checks GCL against its authors' `GCLLoss` and the draws against an independent numpy
//! generator: bench/fixtures/gcl.py -> tests/fixtures/gcl.json. The loss is built through the
//! registry (with DRW around it for the weighted case) and reduced by [`step_loss`] with the
//! case's key, as the training loop does.

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use super::fixture_tests::{assert_within, to_f64};
use super::*;
use crate::registry::{BuildContext, Kind, builtin_registry};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gcl.json"
));
/// |got - want| <= TOL * (1 + |want|), float32 against float64 (s = 30 scales the cosines).
const TOL: f64 = 5e-5;

#[derive(Deserialize)]
struct Fixture {
    losses: Vec<Case>,
    draws: Vec<Draws>,
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct Case {
    case: String,
    params: BTreeMap<String, f64>,
    counts: Vec<usize>,
    n: usize,
    c: usize,
    key: u64,
    weighted: bool,
    labels: Vec<i64>,
    #[serde(default)]
    labels_b: Option<Vec<i64>>,
    #[serde(default)]
    lam: Option<f64>,
    logits: Vec<f64>,
    value: f64,
    grad: Vec<f64>,
}

#[derive(Deserialize)]
struct Draws {
    key: u64,
    term: usize,
    first_row: usize,
    rows: usize,
    classes: usize,
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct Key {
    seed: u64,
    stage: usize,
    epoch: usize,
    batch: usize,
    key: u64,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("gcl.json parses")
}

fn build(r: &Case) -> std::sync::Arc<dyn Loss> {
    let registry = builtin_registry();
    let values: Vec<(&str, f64)> = r.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let params = registry
        .validated(Kind::Loss, "gcl", &values)
        .unwrap_or_else(|e| panic!("{}: {e}", r.case));
    let drw = r.weighted.then(|| {
        registry
            .validated(
                Kind::LossSchedule,
                "drw",
                &[("start_fraction", 0.0), ("beta", 0.9999)],
            )
            .expect("drw")
    });
    let ctx = BuildContext {
        class_counts: r.counts.clone(),
        epochs: 1,
    };
    registry.loss(&params, drw.as_ref(), &ctx).expect("builds")
}

fn labels(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

#[test]
fn gcl_matches_its_authors_loss_values_and_gradients() {
    let fixture = fixture();
    assert!(fixture.losses.len() >= 6);
    for r in &fixture.losses {
        let loss = build(r);
        assert!(loss.wants_cosine_head(), "{}", r.case);
        let device = Device::default().autodiff();
        let z: Vec<f32> = r.logits.iter().map(|&x| x as f32).collect();
        let logits = Tensor::<2>::from_data(TensorData::new(z, [r.n, r.c]), &device).require_grad();
        let mix = r.labels_b.as_ref().map(|b| Mixup {
            labels_b: labels(b, &device),
            lam: Tensor::<1>::from_data(
                TensorData::new(vec![r.lam.expect("lam") as f32; r.n], [r.n]),
                &device,
            ),
        });
        let step = Step {
            mix,
            draws: StepDraws {
                key: r.key,
                first_row: 0,
            },
            ..Step::plain(logits.clone(), labels(&r.labels, &device), 0, 0)
        };
        let value = step_loss(loss.as_ref(), step).expect("loss");
        let grads = value.backward();
        let g = logits.grad(&grads).expect("logits have a gradient");
        assert_within(
            &format!("{}: value", r.case),
            &to_f64(value.detach()),
            &[r.value],
            TOL,
        );
        assert_within(
            &format!("{}: dL/dz", r.case),
            &to_f64(g.reshape([r.n * r.c])),
            &r.grad,
            TOL,
        );
    }
}

/// `per_sample` alone (no step) draws with key 0, term 0: the fixture's key-0 case.
#[test]
fn gcl_per_sample_outside_a_step_draws_with_key_zero() {
    let fixture = fixture();
    let r = fixture
        .losses
        .iter()
        .find(|r| r.key == 0 && r.labels_b.is_none() && !r.weighted)
        .expect("a key-0 case");
    let loss = build(r);
    let device = Device::default();
    let z: Vec<f32> = r.logits.iter().map(|&x| x as f32).collect();
    let logits = Tensor::<2>::from_data(TensorData::new(z, [r.n, r.c]), &device);
    let mean = loss.per_sample(logits, labels(&r.labels, &device)).mean();
    assert_within(&r.case, &to_f64(mean), &[r.value], TOL);
}

#[test]
fn draws_match_the_independent_numpy_generator() {
    let fixture = fixture();
    for d in &fixture.draws {
        let at = StepDraws {
            key: d.key,
            first_row: d.first_row,
        };
        let got = normal_block(at, d.term, d.rows, d.classes);
        assert_within(&format!("draws of key {}", d.key), &got, &d.values, 1e-12);
    }
    for k in &fixture.keys {
        assert_eq!(
            step_key(k.seed, k.stage, k.epoch, k.batch),
            k.key,
            "key of seed {} stage {} epoch {} batch {}",
            k.seed,
            k.stage,
            k.epoch,
            k.batch
        );
    }
}

#[test]
fn gcl_refuses_bad_parameters_and_has_no_clouds_when_balanced() {
    for (key, bad) in [
        ("s", 0.0),
        ("m", -0.1),
        ("noise_mul", -1.0),
        ("gamma", -1.0),
    ] {
        let err = builtin_registry()
            .validated(Kind::Loss, "gcl", &[(key, bad)])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let lt = Gcl::new(&[100, 10, 1], 0.0, 30.0, 0.5, 0.0).unwrap();
    assert_eq!(lt.cloud()[0], 0.0);
    assert!((lt.cloud()[2] - 0.5).abs() < 1e-7);
    assert!((lt.cloud()[1] - 0.25).abs() < 1e-6);
    let flat = Gcl::new(&[7, 7, 7], 0.0, 30.0, 0.5, 0.0).unwrap();
    assert!(flat.cloud().iter().all(|&a| a == 0.0));
    assert!(Gcl::new(&[7, 0], 0.0, 30.0, 0.5, 0.0).is_err());
}
