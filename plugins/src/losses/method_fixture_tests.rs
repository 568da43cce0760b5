//! Checks the newer losses (VS, LADE, ...) against their authors' code: values and gradients
//! dL/dz of the batch loss from bench/fixtures/methods.py (float64 PyTorch autograd over the
//! authors' modules) -> tests/fixtures/methods.json. Each loss is built the way a run builds it,
//! through the registry by name and parameters, and reduced by [`step_loss`]; the distillation
//! loss as the `kd` stage 2 builds it around the run's loss.

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use super::fixture_tests::{assert_within, to_f64};
use super::*;
use crate::registry::{BuildContext, Kind, builtin_registry};
use crate::stage2::Stage2Plan;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/methods.json"
));
/// |got - want| <= TOL * (1 + |want|), float32 against float64.
const TOL: f64 = 2e-5;

#[derive(Deserialize)]
struct Fixture {
    losses: Vec<Record>,
    distillation: Vec<KdRecord>,
}

/// A distillation case: the student's logits, the teacher's, and the task loss under it.
#[derive(Deserialize)]
struct KdRecord {
    case: String,
    base: String,
    params: BTreeMap<String, f64>,
    counts: Vec<usize>,
    n: usize,
    c: usize,
    logits: Vec<f64>,
    teacher: Vec<f64>,
    labels: Vec<i64>,
    value: f64,
    grad: Vec<f64>,
}

#[derive(Deserialize)]
struct Record {
    case: String,
    loss: String,
    params: BTreeMap<String, f64>,
    counts: Vec<usize>,
    n: usize,
    c: usize,
    logits: Vec<f64>,
    labels: Vec<i64>,
    value: f64,
    grad: Vec<f64>,
    /// Features `[N, d]` and the gradient in them, for losses that read features.
    #[serde(default)]
    d: usize,
    #[serde(default)]
    features: Option<Vec<f64>>,
    #[serde(default)]
    feature_grad: Option<Vec<f64>>,
    /// Experts' logits `[e, N, C]` and their gradient, for losses over several experts (then
    /// `logits` and `grad` are empty: the model's logits are the experts' mean).
    #[serde(default)]
    e: usize,
    #[serde(default)]
    experts: Option<Vec<f64>>,
    #[serde(default)]
    expert_grad: Option<Vec<f64>>,
    /// The run's epochs and this step's 0-based epoch (losses that change with the epoch).
    #[serde(default = "one")]
    epochs: usize,
    #[serde(default)]
    epoch: usize,
}

fn one() -> usize {
    1
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_within(what, got, want, TOL);
}

#[test]
fn newer_losses_match_their_authors_code_values_and_gradients() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("methods.json parses");
    let registry = builtin_registry();
    let mut seen = std::collections::BTreeSet::new();
    for r in fixture.losses.iter().filter(|r| r.experts.is_none()) {
        let tag = format!("{} {:?} on {}", r.loss, r.params, r.case);
        let values: Vec<(&str, f64)> = r.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let params = registry
            .validated(Kind::Loss, &r.loss, &values)
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let ctx = BuildContext {
            class_counts: r.counts.clone(),
            epochs: 1,
        };
        let loss = registry.loss(&params, None, &ctx).expect("builds");
        let device = Device::default().autodiff();
        let logits = Tensor::<2>::from_data(
            TensorData::new(
                r.logits.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                [r.n, r.c],
            ),
            &device,
        )
        .require_grad();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device);
        let features = r.features.as_ref().map(|h| {
            Tensor::<2>::from_data(
                TensorData::new(h.iter().map(|&x| x as f32).collect::<Vec<_>>(), [r.n, r.d]),
                &device,
            )
            .require_grad()
        });
        let step = Step {
            logits: logits.clone(),
            experts: None,
            features: features.clone(),
            labels,
            mix: None,
            epoch: 0,
            step: 0,
            teacher: None,
            embeddings: None,
            centers: None,
            draws: Default::default(),
            second: None,
        };
        let value = step_loss(loss.as_ref(), step).expect("loss");
        let grads = value.backward();
        let g = logits.grad(&grads).expect("logits have a gradient");
        close(
            &format!("{tag}: value"),
            &to_f64(value.detach()),
            &[r.value],
        );
        close(
            &format!("{tag}: grad"),
            &to_f64(g.reshape([r.n * r.c])),
            &r.grad,
        );
        match (&features, &r.feature_grad) {
            (Some(h), Some(want)) => {
                let g = h.grad(&grads).expect("features have a gradient");
                close(
                    &format!("{tag}: feature grad"),
                    &to_f64(g.reshape([r.n * r.d])),
                    want,
                );
            }
            (None, None) => {}
            _ => panic!("{tag}: features without their gradient"),
        }
        seen.insert(r.loss.clone());
    }
    for name in ["vs", "lade", "influence-balanced", "label-aware-smoothing"] {
        assert!(seen.contains(name), "{name} missing from {seen:?}");
    }
}

fn floats(v: &[f64], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(
        TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape),
        device,
    )
}

/// The `kd` stage 2's loss, built as a run builds it (the registry's `kd` plugin's plan around
/// the run's loss from the registry), against DiVE's `DiVEKLD` in float64: value and gradient
/// in the student's logits.
#[test]
fn distillation_matches_dive_kld_values_and_gradients() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("methods.json parses");
    let registry = builtin_registry();
    let mut bases = std::collections::BTreeSet::new();
    for r in &fixture.distillation {
        let tag = format!("kd {:?} over {} on {}", r.params, r.base, r.case);
        let values: Vec<(&str, f64)> = r.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let kd = registry
            .validated(Kind::Stage2, "kd", &values)
            .and_then(|p| registry.stage2(&p))
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let Stage2Plan::Distil(plan) = kd.plan() else {
            panic!("{tag}: kd's plan is not a distillation");
        };
        let ctx = BuildContext {
            class_counts: r.counts.clone(),
            epochs: 1,
        };
        let task = registry
            .validated(Kind::Loss, &r.base, &[])
            .and_then(|p| registry.loss(&p, None, &ctx))
            .expect("task loss");
        let loss = plan.loss(task).expect("kd loss");
        let device = Device::default().autodiff();
        let logits = floats(&r.logits, [r.n, r.c], &device).require_grad();
        let step = Step {
            experts: None,
            logits: logits.clone(),
            features: None,
            labels: Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device),
            mix: None,
            epoch: 0,
            step: 0,
            teacher: Some(floats(&r.teacher, [r.n, r.c], &device)),
            embeddings: None,
            centers: None,
            draws: Default::default(),
            second: None,
        };
        let value = step_loss(loss.as_ref(), step).expect("loss");
        let g = logits
            .grad(&value.backward())
            .expect("logits have a gradient");
        close(
            &format!("{tag}: value"),
            &to_f64(value.detach()),
            &[r.value],
        );
        close(
            &format!("{tag}: grad"),
            &to_f64(g.reshape([r.n * r.c])),
            &r.grad,
        );
        bases.insert(r.base.clone());
    }
    assert_eq!(
        bases.into_iter().collect::<Vec<_>>(),
        ["balanced-softmax", "ce"]
    );
}

/// With the student's own logits as the teacher the KL term is 0: the loss is (1 - alpha)
/// times the task loss; and without a teacher the loss is an error naming the stage 2.
#[test]
fn distillation_from_itself_is_the_scaled_task_loss_and_needs_a_teacher() {
    let device = Device::default();
    let z = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]], &device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
    let kd = Distillation::new(std::sync::Arc::new(CrossEntropy), 0.25, 3.0).expect("kd");
    let step = |teacher| Step {
        experts: None,
        logits: z.clone(),
        features: None,
        labels: y.clone(),
        mix: None,
        epoch: 0,
        step: 0,
        teacher,
        embeddings: None,
        centers: None,
        draws: Default::default(),
        second: None,
    };
    let ce = to_f64(CrossEntropy.per_sample(z.clone(), y.clone()).mean());
    close(
        "kd(z, z)",
        &to_f64(step_loss(&kd, step(Some(z.clone()))).unwrap()),
        &[0.75 * ce[0]],
    );
    let err = step_loss(&kd, step(None)).unwrap_err().to_string();
    assert!(err.contains("kd") && err.contains("module.stage2"), "{err}");
    for (alpha, t, key) in [(1.5, 3.0, "alpha"), (0.5, 0.0, "temperature")] {
        let err = Distillation::new(std::sync::Arc::new(CrossEntropy), alpha, t)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn expert_losses_match_their_authors_code_values_and_gradients() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("methods.json parses");
    let registry = builtin_registry();
    let mut seen = std::collections::BTreeSet::new();
    for r in fixture.losses.iter().filter(|r| r.experts.is_some()) {
        let tag = format!(
            "{} {:?} on {} at epoch {}",
            r.loss, r.params, r.case, r.epoch
        );
        let values: Vec<(&str, f64)> = r.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let params = registry
            .validated(Kind::Loss, &r.loss, &values)
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let ctx = BuildContext {
            class_counts: r.counts.clone(),
            epochs: r.epochs,
        };
        let loss = registry.loss(&params, None, &ctx).expect("builds");
        let device = Device::default().autodiff();
        let z = r.experts.as_ref().expect("filtered");
        let experts = Tensor::<3>::from_data(TensorData::new(f32s(z), [r.e, r.n, r.c]), &device)
            .require_grad();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device);
        let step = Step {
            teacher: None,
            embeddings: None,
            centers: None,
            second: None,
            logits: experts.clone().mean_dim(0).reshape([r.n, r.c]),
            experts: Some(experts.clone()),
            features: None,
            labels,
            mix: None,
            epoch: r.epoch,
            step: 0,
            draws: Default::default(),
        };
        let value = step_loss(loss.as_ref(), step).expect("loss");
        let grads = value.backward();
        close(
            &format!("{tag}: value"),
            &to_f64(value.detach()),
            &[r.value],
        );
        let g = experts.grad(&grads).expect("experts have a gradient");
        close(
            &format!("{tag}: expert grad"),
            &to_f64(g.reshape([r.e * r.n * r.c])),
            r.expert_grad.as_ref().expect("expert gradient"),
        );
        seen.insert((r.loss.clone(), r.epoch));
    }
    // RIDE before and after its re-weighting epoch, and SADE.
    for want in [("ride", 0), ("ride", 9), ("sade", 0)] {
        let want = (want.0.to_string(), want.1);
        assert!(seen.contains(&want), "{want:?} missing from {seen:?}");
    }
}

#[test]
fn expert_losses_refuse_a_model_without_experts_and_mixed_batches() {
    let registry = builtin_registry();
    let device = Device::default();
    let ctx = BuildContext {
        class_counts: vec![30, 10, 3],
        epochs: 10,
    };
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
    for name in ["ride", "sade"] {
        let params = registry.validated(Kind::Loss, name, &[]).expect("defaults");
        let loss = registry.loss(&params, None, &ctx).expect("builds");
        let plain = Step {
            teacher: None,
            embeddings: None,
            centers: None,
            second: None,
            logits: Tensor::<2>::zeros([2, 3], &device),
            experts: None,
            features: None,
            labels: labels.clone(),
            mix: None,
            epoch: 0,
            step: 0,
            draws: Default::default(),
        };
        let err = step_loss(loss.as_ref(), plain.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("experts"), "{name}: {err}");
        let mixed = Step {
            experts: Some(Tensor::<3>::zeros([3, 2, 3], &device)),
            mix: Some(Mixup {
                labels_b: labels.clone(),
                lam: Tensor::<1>::from_floats([0.5, 0.5], &device),
            }),
            ..plain
        };
        let err = step_loss(loss.as_ref(), mixed).unwrap_err().to_string();
        assert!(err.contains("augment.batch"), "{name}: {err}");
    }
    // SADE is three experts exactly.
    let params = registry
        .validated(Kind::Loss, "sade", &[])
        .expect("defaults");
    let loss = registry.loss(&params, None, &ctx).expect("builds");
    let two = Step {
        teacher: None,
        embeddings: None,
        centers: None,
        second: None,
        logits: Tensor::<2>::zeros([2, 3], &device),
        experts: Some(Tensor::<3>::zeros([2, 2, 3], &device)),
        features: None,
        labels,
        mix: None,
        epoch: 0,
        step: 0,
        draws: Default::default(),
    };
    assert!(step_loss(loss.as_ref(), two).is_err());
}

#[test]
fn sades_inverse_prior_mirrors_ranks_and_breaks_ties_by_class() {
    // Ascending ranks: class 2 (0.1), class 0 (0.2), class 3 (0.3), class 1 (0.4).
    let inv = super::sade::inverse_prior(&[0.2, 0.4, 0.1, 0.3]);
    assert_eq!(inv, vec![0.3, 0.1, 0.4, 0.2]);
    // Ties keep class order: ranks 0 (class 2), 1 (class 0), 2 (class 1).
    let inv = super::sade::inverse_prior(&[0.4, 0.4, 0.2]);
    assert_eq!(inv, vec![0.4, 0.2, 0.4]);
}

#[test]
fn lade_refuses_a_mixed_batch() {
    let loss = Lade::new(&[10, 5, 2], 0.1, 0.1).expect("lade");
    let device = Device::default();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
    let step = Step {
        logits: Tensor::<2>::zeros([2, 3], &device),
        experts: None,
        features: None,
        labels: labels.clone(),
        mix: Some(Mixup {
            labels_b: labels,
            lam: Tensor::<1>::from_floats([0.5, 0.5], &device),
        }),
        epoch: 0,
        step: 0,
        teacher: None,
        embeddings: None,
        centers: None,
        draws: Default::default(),
        second: None,
    };
    let err = step_loss(&loss, step).unwrap_err().to_string();
    assert!(
        err.contains("lade") && err.contains("augment.batch"),
        "{err}"
    );
}

#[test]
fn influence_balanced_is_plain_ce_before_its_start_epoch() {
    let ib = InfluenceBalanced::new(&[10, 5, 2], 1000.0, 3).expect("ib");
    let device = Device::default();
    let z = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]], &device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
    let step = |epoch| Step {
        logits: z.clone(),
        experts: None,
        features: Some(Tensor::<2>::ones([2, 4], &device)),
        labels: y.clone(),
        mix: None,
        epoch,
        step: 0,
        teacher: None,
        embeddings: None,
        centers: None,
        draws: Default::default(),
        second: None,
    };
    let ce = to_f64(CrossEntropy.per_sample(z.clone(), y.clone()).mean());
    close("warm-up", &to_f64(step_loss(&ib, step(2)).unwrap()), &ce);
    let after = to_f64(step_loss(&ib, step(3)).unwrap());
    assert!(
        (after[0] - ce[0]).abs() > 1.0,
        "IB from epoch 3: {after:?} vs {ce:?}"
    );
}

#[test]
fn vs_with_no_scaling_is_the_logit_adjusted_loss() {
    let counts = [50, 20, 5];
    let vs = VectorScaling::new(&counts, 0.0, 1.0).expect("vs");
    let la = LogitAdjusted::new(&counts, 1.0).expect("la");
    let device = Device::default();
    let z = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]], &device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
    close(
        "vs(gamma=0) = logit-adjusted",
        &to_f64(vs.per_sample(z.clone(), y.clone())),
        &to_f64(la.per_sample(z, y)),
    );
}
