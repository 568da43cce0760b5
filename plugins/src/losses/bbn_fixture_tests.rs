//! Checks BBN against its authors' code: `bbn_mix`'s mixed output, loss and gradients in both
//! branches' features and in the classifier's weight and bias, and the evaluation logits, from
//! bench/fixtures/bbn.py (Megvii-Nanjing/BBN's combiner re-typed in float64 PyTorch) ->
//! tests/fixtures/bbn.json. The logits of the two branches come from the model's head
//! ([`crate::models::Head::bilateral_logits`], what the training loop gives the loss), the loss
//! is built through the registry by name, as a run builds it, and evaluated by [`step_loss`].

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use super::fixture_tests::{assert_within, to_f64};
use super::*;
use crate::models::{Head, HeadKind};
use crate::registry::{BuildContext, Kind, builtin_registry};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/bbn.json"
));
/// |got - want| <= TOL * (1 + |want|), float32 against float64.
const TOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Fixture {
    bbn: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    case: String,
    n: usize,
    d: usize,
    c: usize,
    epoch: usize,
    epochs: usize,
    alpha: f64,
    feature_a: Vec<f64>,
    feature_b: Vec<f64>,
    weight: Vec<f64>,
    bias: Vec<f64>,
    label_a: Vec<i64>,
    label_b: Vec<i64>,
    loss: f64,
    output: Vec<f64>,
    grad_a: Vec<f64>,
    grad_b: Vec<f64>,
    grad_weight: Vec<f64>,
    grad_bias: Vec<f64>,
    eval_logits: Vec<f64>,
}

fn tensor<const D: usize>(v: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::<D>::from_data(TensorData::new(v, shape), device)
}

fn labels(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let n: usize = t.dims().iter().product();
    to_f64(t.reshape([n]))
}

fn head(r: &Record, device: &Device) -> Head {
    let mut head = Head::new(HeadKind::Linear, 2 * r.d, r.c, device).expect("a head");
    head.weight = Param::from_tensor(tensor(&r.weight, [r.c, 2 * r.d], device));
    head.bias = Some(Param::from_tensor(tensor(&r.bias, [r.c], device)));
    head
}

#[test]
fn bbn_matches_its_authors_code_values_and_gradients() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("bbn.json parses");
    assert_eq!(fixture.bbn.len(), 8, "two cases x four epochs");
    let registry = builtin_registry();
    let params = registry.validated(Kind::Loss, "bbn", &[]).expect("bbn");
    for r in &fixture.bbn {
        let tag = format!("bbn {} at epoch {}", r.case, r.epoch);
        let ctx = BuildContext {
            class_counts: vec![1; r.c],
            epochs: r.epochs,
        };
        let loss = registry.loss(&params, None, &ctx).expect("builds");
        assert!(
            (Bbn::new(r.epochs).alpha(r.epoch) - r.alpha).abs() < 1e-12,
            "{tag}: alpha"
        );
        let device = Device::default().autodiff();
        let head = head(r, &device);
        let f_a = tensor(&r.feature_a, [r.n, r.d], &device).require_grad();
        let f_b = tensor(&r.feature_b, [r.n, r.d], &device).require_grad();
        let (z_c, z_r) = head.bilateral_logits(f_a.clone(), f_b.clone());
        let alpha = r.alpha;
        let mixed = z_c.clone().mul_scalar(alpha) + z_r.clone().mul_scalar(1.0 - alpha);
        assert_within(&format!("{tag}: output"), &flat(mixed), &r.output, TOL);
        let step = Step {
            second: Some(SecondStream {
                logits: z_r,
                labels: labels(&r.label_b, &device),
            }),
            ..Step::plain(z_c, labels(&r.label_a, &device), r.epoch, 0)
        };
        let l = step_loss(loss.as_ref(), step).expect("a value");
        assert_within(&format!("{tag}: loss"), &to_f64(l.clone()), &[r.loss], TOL);
        let grads = l.backward();
        let g = |t: Option<Tensor<2>>, what: &str| flat(t.unwrap_or_else(|| panic!("{what}")));
        assert_within(
            &format!("{tag}: d/dfeature_a"),
            &g(f_a.grad(&grads), "feature_a gradient"),
            &r.grad_a,
            TOL,
        );
        assert_within(
            &format!("{tag}: d/dfeature_b"),
            &g(f_b.grad(&grads), "feature_b gradient"),
            &r.grad_b,
            TOL,
        );
        let mut params = GradientsParams::from_grads(grads, &head);
        let gw = params.remove::<2>(head.weight.id);
        assert_within(
            &format!("{tag}: d/dweight"),
            &g(gw, "weight gradient"),
            &r.grad_weight,
            TOL,
        );
        let bias = head.bias.as_ref().expect("a linear head's bias");
        let gb = params.remove::<1>(bias.id).expect("bias gradient");
        assert_within(&format!("{tag}: d/dbias"), &to_f64(gb), &r.grad_bias, TOL);
        // Evaluation: the classifier on both branches' features of the same images.
        let both = Tensor::cat(
            vec![
                tensor(&r.feature_a, [r.n, r.d], &device),
                tensor(&r.feature_b, [r.n, r.d], &device),
            ],
            1,
        );
        assert_within(
            &format!("{tag}: evaluation logits"),
            &flat(head.forward(both)),
            &r.eval_logits,
            TOL,
        );
    }
}

/// Without the second stream, or with a mixed batch, BBN says what is missing instead of
/// training something else.
#[test]
fn bbn_refuses_a_step_without_its_second_stream_or_with_mixing() {
    let device = Device::default();
    let z = Tensor::<2>::zeros([2, 3], &device);
    let y = labels(&[0, 1], &device);
    let bbn = Bbn::new(10);
    let err = step_loss(&bbn, Step::plain(z.clone(), y.clone(), 0, 0)).unwrap_err();
    assert!(err.to_string().contains("second_sampler"), "{err}");
    let mixed = Step {
        mix: Some(Mixup {
            labels_b: y.clone(),
            lam: Tensor::<1>::ones([2], &device),
        }),
        second: Some(SecondStream {
            logits: z.clone(),
            labels: y.clone(),
        }),
        ..Step::plain(z.clone(), y.clone(), 0, 0)
    };
    assert!(
        step_loss(&bbn, mixed)
            .unwrap_err()
            .to_string()
            .contains("augment.batch")
    );
    let short = Step {
        second: Some(SecondStream {
            logits: z.clone().narrow(0, 0, 1),
            labels: labels(&[1], &device),
        }),
        ..Step::plain(z, y, 0, 0)
    };
    assert!(matches!(
        step_loss(&bbn, short),
        Err(LossError::BatchMismatch { .. })
    ));
    // The adaptor: 1 at the first epoch, decaying as a parabola.
    assert_eq!(bbn.alpha(0), 1.0);
    assert!((bbn.alpha(5) - 0.75).abs() < 1e-12);
}
