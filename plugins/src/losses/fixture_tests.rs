//! Checks every loss, `combine` and `posthoc_adjust` against float64 numpy references
//! (bench/fixtures/losses.py -> tests/fixtures/losses.json): values, class weights, and gradients
//! dL/dz through Burn's autodiff, for hard labels and per-sample mixup.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;
use serde_json::Value;

use super::*;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/losses.json"
));
/// |got - want| <= TOL * (1 + |want|): absolute near 0, relative for large values.
const TOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    losses: Vec<Record>,
    posthoc: Vec<Posthoc>,
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
    loss: String,
    params: HashMap<String, Value>,
    epoch: usize,
    per_sample: Vec<f64>,
    class_weights: Option<Vec<f64>>,
    hard: Eval,
    mixup: Eval,
}

#[derive(Deserialize)]
struct Eval {
    value: f64,
    grad: Vec<f64>,
}

#[derive(Deserialize)]
struct Posthoc {
    case: String,
    tau: f64,
    log_prior: Vec<f64>,
    adjusted: Vec<f64>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("losses.json parses")
}

fn case<'a>(f: &'a Fixture, name: &str) -> &'a Case {
    f.cases
        .iter()
        .find(|c| c.name == name)
        .expect("case exists")
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

pub(super) fn to_f64(t: Tensor<1>) -> Vec<f64> {
    let v: Vec<f32> = t.into_data().try_to_vec().expect("f32 tensor");
    v.into_iter().map(f64::from).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_within(what, got, want, TOL);
}

/// `|got - want| <= tol (1 + |want|)` element by element.
pub(super) fn assert_within(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w} (diff {:e})",
            (g - w).abs()
        );
    }
}

fn p(r: &Record, key: &str) -> f64 {
    r.params[key].as_f64().expect("numeric param")
}

fn build(r: &Record, counts: &[usize]) -> Box<dyn Loss> {
    let drw = |base: std::sync::Arc<dyn Loss>| -> Box<dyn Loss> {
        let start = r.params["start_epoch"].as_u64().expect("start_epoch") as usize;
        Box::new(Drw::new(base, counts, start, p(r, "beta")).expect("drw"))
    };
    match r.loss.as_str() {
        "cross_entropy" => Box::new(CrossEntropy::new().expect("ce")),
        "weighted_ce" => Box::new(WeightedCe::new(counts).expect("wce")),
        "class_balanced" => {
            let base = match r.params["base"].as_str() {
                Some("ce") => ClassBalancedBase::CrossEntropy,
                Some("focal") => ClassBalancedBase::Focal {
                    gamma: p(r, "gamma"),
                },
                other => panic!("unknown base {other:?}"),
            };
            Box::new(ClassBalanced::new(counts, p(r, "beta"), base).expect("cb"))
        }
        "focal" => Box::new(Focal::new(p(r, "gamma")).expect("focal")),
        "ldam" => Box::new(Ldam::new(counts, p(r, "max_m"), p(r, "s")).expect("ldam")),
        "balanced_softmax" => Box::new(BalancedSoftmax::new(counts).expect("bs")),
        "logit_adjusted" => Box::new(LogitAdjusted::new(counts, p(r, "tau")).expect("la")),
        "drw_ce" => drw(std::sync::Arc::new(CrossEntropy)),
        "drw_focal" => drw(std::sync::Arc::new(
            Focal::new(p(r, "gamma")).expect("focal"),
        )),
        "drw_ldam" => drw(std::sync::Arc::new(
            Ldam::new(counts, p(r, "max_m"), p(r, "s")).expect("ldam"),
        )),
        other => panic!("fixture names unknown loss {other}"),
    }
}

struct Batch {
    logits: Tensor<2>,
    a: Tensor<1, Int>,
    b: Tensor<1, Int>,
    lam: Tensor<1>,
}

fn batch(c: &Case, device: &Device) -> Batch {
    let ints = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [c.n]), device);
    Batch {
        logits: Tensor::<2>::from_data(TensorData::new(f32s(&c.logits), [c.n, c.c]), device),
        a: ints(&c.labels_a),
        b: ints(&c.labels_b),
        lam: Tensor::<1>::from_floats(f32s(&c.lam).as_slice(), device),
    }
}

/// Value and gradient of `combine` through autodiff.
fn value_and_grad(loss: &dyn Loss, c: &Case, mixup: bool, epoch: usize) -> (f64, Vec<f64>) {
    let device = Device::default().autodiff();
    let Batch { logits, a, b, lam } = batch(c, &device);
    let logits = logits.require_grad();
    let mix = mixup.then_some(Mixup { labels_b: b, lam });
    let l = combine(loss, logits.clone(), a, mix, epoch).expect("combine");
    let grads = l.backward();
    let g = logits.grad(&grads).expect("logits have a gradient");
    let value = to_f64(l.detach())[0];
    (value, to_f64(g.reshape([c.n * c.c])))
}

#[test]
fn every_loss_matches_numpy_values_weights_and_gradients() {
    let f = fixture();
    assert!(f.losses.len() >= 50, "fixture has all records");
    let device = Device::default();
    for r in &f.losses {
        let c = case(&f, &r.case);
        let counts: Vec<usize> = c.counts.iter().map(|&n| n as usize).collect();
        let loss = build(r, &counts);
        let tag = format!("{} {:?} on {} @epoch {}", r.loss, r.params, r.case, r.epoch);
        assert_eq!(loss.wants_cosine_head(), r.loss.contains("ldam"), "{tag}");

        let Batch { logits, a, .. } = batch(c, &device);
        let per = to_f64(loss.per_sample(logits, a));
        assert_close(&format!("{tag}: per_sample"), &per, &r.per_sample);

        let w = loss
            .class_weights(r.epoch)
            .map(|w| w.into_iter().map(f64::from).collect::<Vec<_>>());
        match (&w, &r.class_weights) {
            (Some(got), Some(want)) => assert_close(&format!("{tag}: weights"), got, want),
            (None, None) => {}
            _ => panic!("{tag}: class weights {w:?}, want {:?}", r.class_weights),
        }

        for (mixup, want) in [(false, &r.hard), (true, &r.mixup)] {
            let (v, g) = value_and_grad(loss.as_ref(), c, mixup, r.epoch);
            assert_close(&format!("{tag} mixup={mixup}: value"), &[v], &[want.value]);
            assert_close(&format!("{tag} mixup={mixup}: grad"), &g, &want.grad);
        }
    }
}

#[test]
fn posthoc_adjust_matches_numpy_and_log_prior() {
    let f = fixture();
    let device = Device::default();
    for r in &f.posthoc {
        let c = case(&f, &r.case);
        let counts: Vec<usize> = c.counts.iter().map(|&n| n as usize).collect();
        let prior = log_prior(&counts).expect("prior");
        let prior64: Vec<f64> = prior.iter().map(|&x| f64::from(x)).collect();
        assert_close("log_prior", &prior64, &r.log_prior);
        let logits = batch(c, &device).logits;
        let adj = posthoc_adjust(logits, &prior, r.tau).expect("adjust");
        assert_close("posthoc", &to_f64(adj.reshape([c.n * c.c])), &r.adjusted);
    }
}
