//! Checks BCL against its authors' code: the value of `alpha LogitAdjust + beta BalSCL` and its
//! gradients in the logits, the views' embeddings and the class centers, from
//! bench/fixtures/methods.py (FlamieZhu/Balanced-Contrastive-Learning's modules re-typed in
//! float64 PyTorch) -> tests/fixtures/methods.json, `bcl`. The loss is built through the
//! registry by name, as a run builds it, and evaluated by [`step_loss`].

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use super::fixture_tests::{assert_within, to_f64};
use super::*;
use crate::registry::{BuildContext, Kind, builtin_registry};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/methods.json"
));
/// |got - want| <= TOL * (1 + |want|), float32 against float64.
const TOL: f64 = 2e-5;

#[derive(Deserialize)]
struct Fixture {
    bcl: Vec<Record>,
}

/// One case: logits `[N, C]` of the classification view, unit-norm embeddings `[V, N, P]` of
/// all views (view 0 the classification view), unit-norm centers `[C, P]`.
#[derive(Deserialize)]
struct Record {
    case: String,
    params: BTreeMap<String, f64>,
    counts: Vec<usize>,
    n: usize,
    c: usize,
    p: usize,
    views: usize,
    logits: Vec<f64>,
    labels: Vec<i64>,
    embeddings: Vec<f64>,
    centers: Vec<f64>,
    value: f64,
    grad: Vec<f64>,
    embedding_grad: Vec<f64>,
    center_grad: Vec<f64>,
}

fn tensor<const D: usize>(v: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::<D>::from_data(TensorData::new(v, shape), device)
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let n: usize = t.dims().iter().product();
    to_f64(t.reshape([n]))
}

fn build(r: &Record) -> std::sync::Arc<dyn Loss> {
    let registry = builtin_registry();
    let values: Vec<(&str, f64)> = r.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let params = registry
        .validated(Kind::Loss, "bcl", &values)
        .unwrap_or_else(|e| panic!("bcl {:?}: {e}", r.params));
    let ctx = BuildContext {
        class_counts: r.counts.clone(),
        epochs: 1,
    };
    registry.loss(&params, None, &ctx).expect("builds")
}

#[test]
fn bcl_matches_its_authors_code_values_and_gradients() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("methods.json parses");
    assert_eq!(fixture.bcl.len(), 6, "two cases x three parameter sets");
    for r in &fixture.bcl {
        let tag = format!("bcl {:?} on {}", r.params, r.case);
        let loss = build(r);
        let device = Device::default().autodiff();
        let logits = tensor(&r.logits, [r.n, r.c], &device).require_grad();
        let embeddings = tensor(&r.embeddings, [r.views, r.n, r.p], &device).require_grad();
        let centers = tensor(&r.centers, [r.c, r.p], &device).require_grad();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device);
        let step = Step {
            embeddings: Some(embeddings.clone()),
            centers: Some(centers.clone()),
            second: None,
            ..Step::plain(logits.clone(), labels, 0, 0)
        };
        let value = step_loss(loss.as_ref(), step).expect("loss");
        let grads = value.backward();
        assert_within(
            &format!("{tag}: value"),
            &to_f64(value.detach()),
            &[r.value],
            TOL,
        );
        let g = |t: Option<Vec<f64>>, what: &str| t.unwrap_or_else(|| panic!("{tag}: no {what}"));
        assert_within(
            &format!("{tag}: d/dlogits"),
            &g(logits.grad(&grads).map(flat), "logit gradient"),
            &r.grad,
            TOL,
        );
        assert_within(
            &format!("{tag}: d/dembeddings"),
            &g(embeddings.grad(&grads).map(flat), "embedding gradient"),
            &r.embedding_grad,
            TOL,
        );
        assert_within(
            &format!("{tag}: d/dcenters"),
            &g(centers.grad(&grads).map(flat), "center gradient"),
            &r.center_grad,
            TOL,
        );
    }
}

/// Without the views' embeddings (a model without the `contrastive` classifier) or with a mixed
/// batch the loss is an error that names the fix, not a silent cross-entropy.
#[test]
fn bcl_refuses_a_step_without_embeddings_or_with_mixing() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("methods.json parses");
    let r = &fixture.bcl[0];
    let loss = build(r);
    let device = Device::default();
    let logits = tensor(&r.logits, [r.n, r.c], &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device);
    let plain = Step::plain(logits.clone(), labels.clone(), 0, 0);
    let err = step_loss(loss.as_ref(), plain).unwrap_err().to_string();
    assert!(err.contains("name = \"contrastive\""), "{err}");
    let mixed = Step {
        embeddings: Some(tensor(&r.embeddings, [r.views, r.n, r.p], &device)),
        centers: Some(tensor(&r.centers, [r.c, r.p], &device)),
        second: None,
        mix: Some(Mixup {
            labels_b: labels.clone(),
            lam: Tensor::<1>::ones([r.n], &device),
        }),
        ..Step::plain(logits, labels, 0, 0)
    };
    let err = step_loss(loss.as_ref(), mixed).unwrap_err().to_string();
    assert!(err.contains("augment.batch"), "{err}");
    // Out-of-range parameters are refused by the registry, naming the key.
    let registry = builtin_registry();
    for (key, bad) in [("temperature", 0.0), ("alpha", -1.0), ("beta", 101.0)] {
        let err = registry
            .validated(Kind::Loss, "bcl", &[(key, bad)])
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}
