//! DisAlign (Zhang et al., "Distribution Alignment: A Unified Framework for Long-tail Visual
//! Recognition", CVPR 2021; Megvii-BaseDetection/DisAlign `classification/` on cvpods'
//! `DisAlignLinear` and `GRWCrossEntropyLoss`): after stage 1 the backbone and the classifier
//! are frozen, and an adaptive calibration of the logits, `z' = (1 + sigma alpha) z + sigma
//! beta` with `sigma = sigmoid(v . x + b)` ([`crate::models::Head::with_disalign`]), is trained
//! with the generalized re-weighting loss ([`crate::losses::GeneralizedReweight`], `rho`) on
//! the run's own (instance-balanced) sampling; the ImageNet-LT config trains it 10 epochs at
//! lr 0.1, weight decay 5e-4, cosine.
//!
//! Left out: nothing of the calibration or the loss; the config's batch of 256 and its input
//! pipeline are the run's.

use super::{HeadPlan, Stage2Method, Stage2Plan, TrainPlan};
use crate::registry::{Params, PluginRef};

#[derive(Debug, Clone)]
pub struct DisAlign(Params);

impl DisAlign {
    pub fn from_params(p: &Params) -> Self {
        Self(p.clone())
    }
}

impl Stage2Method for DisAlign {
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        let p = &self.0;
        let mut grw = PluginRef::named("grw");
        grw.params
            .insert("rho".into(), toml::Value::Float(p.get("rho")));
        Stage2Plan::Train(TrainPlan {
            epochs: p.get("epochs") as usize,
            lr: p.get("lr"),
            weight_decay: Some(p.get("weight_decay")),
            head: HeadPlan::DisAlign,
            sampler: PluginRef::named("instance"),
            loss: grw,
            mixer: None,
            max_norm_thresh: None,
            head_lr_factor: 1.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Device, Int, Tensor, TensorData};
    use serde::Deserialize;

    use crate::losses::{Step, step_loss};
    use crate::models::{Head, HeadKind};
    use crate::registry::{BuildContext, Kind, builtin_registry};

    const FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/disalign.json"
    ));

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        case: String,
        counts: Vec<usize>,
        rho: f64,
        n: usize,
        d: usize,
        c: usize,
        cosine_scale: f32,
        features: Vec<f64>,
        weight: Vec<f64>,
        bias: Option<Vec<f64>>,
        logit_scale: Vec<f64>,
        logit_bias: Vec<f64>,
        confidence_weight: Vec<f64>,
        confidence_bias: Vec<f64>,
        labels: Vec<i64>,
        logits: Vec<f64>,
        value: f64,
        grad_logit_scale: Vec<f64>,
        grad_logit_bias: Vec<f64>,
        grad_confidence_weight: Vec<f64>,
        grad_confidence_bias: Vec<f64>,
    }

    fn close(what: &str, got: Tensor<1>, want: &[f64]) {
        let got: Vec<f32> = got.into_data().convert::<f32>().try_to_vec().unwrap();
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 5e-5 * (1.0 + w.abs()),
                "{what}[{i}]: got {g}, want {w}"
            );
        }
    }

    /// bench/fixtures/disalign.py: cvpods' DisAlignLinear / DisAlignNormalizedLinear and
    /// GRWCrossEntropyLoss, float64 autograd; cauda's head with the same parameters and the
    /// `grw` loss from the registry, reduced as the training loop does.
    #[test]
    fn calibration_and_grw_match_the_authors_code() {
        let fixture: Fixture = serde_json::from_str(FIXTURE).expect("disalign.json parses");
        assert_eq!(fixture.cases.len(), 4);
        let registry = builtin_registry();
        for r in &fixture.cases {
            let device = Device::default().autodiff();
            let t1 = |v: &[f64]| {
                let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let n = v.len();
                Tensor::<1>::from_data(TensorData::new(v, [n]), &device)
            };
            let t2 = |v: &[f64], rows: usize, cols: usize| {
                let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), &device)
            };
            let kind = if r.cosine_scale > 0.0 {
                HeadKind::Cosine {
                    scale: r.cosine_scale,
                }
            } else {
                HeadKind::Linear
            };
            let mut head = Head::new(kind, r.d, r.c, &device)
                .unwrap()
                .with_disalign(&device)
                .unwrap();
            head.weight = Param::from_tensor(t2(&r.weight, r.c, r.d)).set_require_grad(false);
            head.bias = r
                .bias
                .as_ref()
                .map(|b| Param::from_tensor(t1(b)).set_require_grad(false));
            let alpha = t1(&r.logit_scale).require_grad();
            let beta = t1(&r.logit_bias).require_grad();
            let v = t2(&r.confidence_weight, 1, r.d).require_grad();
            let b = t1(&r.confidence_bias).require_grad();
            head.logit_scale = Some(Param::from_tensor(alpha.clone()));
            head.logit_bias = Some(Param::from_tensor(beta.clone()));
            head.confidence_weight = Some(Param::from_tensor(v.clone()));
            head.confidence_bias = Some(Param::from_tensor(b.clone()));
            let z = head.forward(t2(&r.features, r.n, r.d));
            close(
                &format!("{}: logits", r.case),
                z.clone().reshape([r.n * r.c]),
                &r.logits,
            );
            let params = registry
                .validated(Kind::Loss, "grw", &[("rho", r.rho)])
                .unwrap();
            let ctx = BuildContext {
                class_counts: r.counts.clone(),
                epochs: 1,
            };
            let loss = registry.loss(&params, None, &ctx).unwrap();
            let labels =
                Tensor::<1, Int>::from_data(TensorData::new(r.labels.clone(), [r.n]), &device);
            let value = step_loss(loss.as_ref(), Step::plain(z, labels, 0, 0)).unwrap();
            close(&format!("{}: loss", r.case), value.clone(), &[r.value]);
            let grads = value.backward();
            let g1 = |p: &Tensor<1>| p.grad(&grads).expect("a gradient");
            close(
                &format!("{}: dL/dalpha", r.case),
                g1(&alpha),
                &r.grad_logit_scale,
            );
            close(
                &format!("{}: dL/dbeta", r.case),
                g1(&beta),
                &r.grad_logit_bias,
            );
            close(
                &format!("{}: dL/dv", r.case),
                v.grad(&grads).expect("a gradient").reshape([r.d]),
                &r.grad_confidence_weight,
            );
            close(
                &format!("{}: dL/db", r.case),
                g1(&b),
                &r.grad_confidence_bias,
            );
        }
    }

    /// `DisAlignLinear.__init__`'s values: alpha 1, beta 0, v 0.1, b nn.Linear's default.
    #[test]
    fn with_disalign_starts_from_the_codes_values_and_refuses_experts() {
        let device = Device::default();
        let head = Head::new(HeadKind::Linear, 4, 3, &device)
            .unwrap()
            .with_disalign(&device)
            .unwrap();
        let ones: Vec<f32> = head
            .logit_scale
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(ones, vec![1.0; 3]);
        let zeros: Vec<f32> = head
            .logit_bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(zeros, vec![0.0; 3]);
        let v: Vec<f32> = head
            .confidence_weight
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(v, vec![0.1; 4]);
        let b: Vec<f32> = head
            .confidence_bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(b[0].abs() <= 0.5, "U(-1/sqrt(4), 1/sqrt(4)): {b:?}");
        let experts = Head::experts_with_init(
            HeadKind::Linear,
            crate::models::HeadInit::Torch,
            4,
            3,
            2,
            &device,
        )
        .unwrap();
        assert!(experts.with_disalign(&device).is_err());
    }
}
