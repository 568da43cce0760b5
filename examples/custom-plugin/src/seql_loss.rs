//! The softmax equalization loss, a loss cauda does not ship, written against cauda's public
//! `Loss` trait and registered through its public registry (`registry()` in `lib.rs`).

use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use cauda_plugins::losses::Loss;
use cauda_plugins::registry::{BuildContext, ParamSpec, Params, PluginDecl, RegistryError};

/// The plugin's name in specs (`[rebalance] loss = { name = "seql", lambda = 0.05 }`).
pub const NAME: &str = "seql";

/// A dropped logit: low enough that `exp` of it, next to any kept logit, is exactly 0 in f32,
/// so the softmax, its value and its gradient ignore it.
const DROPPED: f32 = -1.0e9;

/// Softmax equalization loss (Tan et al., "Equalization Loss for Long-Tailed Object
/// Recognition", CVPR 2020, Sec. 3.4), its deterministic case `beta = 1` (`gamma = 1`):
///
/// `l(z, y) = -log p~_y`, `p~_j = exp(z_j) / sum_k w~_k exp(z_k)`,
/// `w~_k = 1 - T_lambda(f_k) (1 - y_k)`,
///
/// with `f_k = n_k / sum_j n_j` the training frequency of class `k` and `T_lambda(f) = 1` when
/// `f < lambda`. The logits of tail classes other than the label leave the softmax, so a head
/// sample never pushes a tail class's logit down (the discouraging gradients the paper blames
/// for tail classes' poor accuracy), while a tail sample is trained against every class. At
/// test time the raw logits are used. `lambda = 0` is cross-entropy.
///
/// The paper draws `beta` from Bernoulli(`gamma`) per sample; a `Loss` is a function of the
/// logits and labels, so only the deterministic `gamma = 1` is offered.
#[derive(Debug, Clone)]
pub struct SoftmaxEql {
    /// `T_lambda(f_k)`: 1 for the tail classes, 0 for the others.
    tail: Vec<f32>,
}

impl SoftmaxEql {
    /// Builds the tail set from the per-class training counts (at least one class, all > 0)
    /// and the frequency threshold `lambda` in `[0, 1]`.
    pub fn new(counts: &[usize], lambda: f64) -> Result<Self, String> {
        if counts.is_empty() {
            return Err("no class counts".into());
        }
        if let Some(class) = counts.iter().position(|&n| n == 0) {
            return Err(format!("class {class} has no training image"));
        }
        if !(0.0..=1.0).contains(&lambda) {
            return Err(format!("lambda = {lambda}, allowed: 0 <= lambda <= 1"));
        }
        let total: f64 = counts.iter().map(|&n| n as f64).sum();
        let tail = counts
            .iter()
            .map(|&n| f32::from(u8::from((n as f64 / total) < lambda)))
            .collect();
        Ok(Self { tail })
    }

    /// Which classes are tail classes (`f_k < lambda`).
    pub fn tail_classes(&self) -> Vec<usize> {
        (0..self.tail.len())
            .filter(|&k| self.tail[k] > 0.0)
            .collect()
    }
}

impl Loss for SoftmaxEql {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [n, c] = logits.dims();
        let device = logits.device();
        // 1 where y_k = 0, then 1 where w~_k = 0: a tail class that is not the label.
        let not_label = labels.clone().one_hot_fill::<2>(c, 0.0, 1.0, -1).float();
        let tail = Tensor::<1>::from_floats(self.tail.as_slice(), &device).reshape([1, c]);
        let dropped = (not_label * tail).greater_elem(0.5);
        let kept = logits.mask_fill(dropped, DROPPED);
        log_softmax(kept, 1)
            .gather(1, labels.reshape([n, 1]))
            .reshape([n])
            .neg()
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.tail.len())
    }
}

/// The plugin as `cauda plugins` lists it.
pub fn decl() -> PluginDecl {
    PluginDecl::new(
        NAME,
        "softmax equalization loss: the logits of tail classes (training frequency < lambda) \
         other than the label leave the softmax (beta = 1)",
        "Tan et al., Equalization Loss for Long-Tailed Object Recognition, CVPR 2020",
        vec![ParamSpec::float(
            "lambda",
            0.05,
            0.0,
            1.0,
            "frequency threshold: classes with n_k / N below it are tail classes",
        )],
    )
}

/// The factory the registry calls with validated parameters and the run's class counts.
pub fn build(params: &Params, ctx: &BuildContext) -> Result<Arc<dyn Loss>, RegistryError> {
    let loss = SoftmaxEql::new(&ctx.class_counts, params.get("lambda"))
        .map_err(|e| RegistryError::build(NAME, e))?;
    Ok(Arc::new(loss))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn per_sample(loss: &SoftmaxEql, logits: &[f32], labels: &[i64], c: usize) -> Vec<f32> {
        let device = Device::default();
        let n = labels.len();
        let z = Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [n, c]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [n]), &device);
        loss.per_sample(z, y).into_data().try_to_vec().expect("f32")
    }

    #[test]
    fn tail_classes_are_those_under_the_frequency_threshold() {
        // Frequencies 0.7, 0.2, 0.07, 0.03.
        let loss = SoftmaxEql::new(&[70, 20, 7, 3], 0.1).unwrap();
        assert_eq!(loss.tail_classes(), [2, 3]);
        assert_eq!(loss.num_classes(), Some(4));
        assert!(
            SoftmaxEql::new(&[70, 20], 0.0)
                .unwrap()
                .tail_classes()
                .is_empty()
        );
        assert_eq!(
            SoftmaxEql::new(&[1, 1], 1.0).unwrap().tail_classes(),
            [0, 1]
        );
    }

    #[test]
    fn a_head_sample_ignores_tail_logits_and_a_tail_sample_does_not() {
        let loss = SoftmaxEql::new(&[70, 20, 7, 3], 0.1).unwrap();
        let z = [1.0, 0.5, 3.0, 2.0];
        let lse = |xs: &[f32]| xs.iter().map(|x| x.exp()).sum::<f32>().ln();
        let got = per_sample(&loss, &[z, z].concat(), &[0, 3], 4);
        // Label 0 (head): classes 2 and 3 are dropped. Label 3 (tail): class 2 is dropped.
        let want = [lse(&[1.0, 0.5]) - 1.0, lse(&[1.0, 0.5, 2.0]) - 2.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn bad_counts_and_thresholds_are_refused_with_the_reason() {
        assert!(SoftmaxEql::new(&[], 0.1).unwrap_err().contains("no class"));
        assert!(
            SoftmaxEql::new(&[3, 0], 0.1)
                .unwrap_err()
                .contains("class 1")
        );
        assert!(
            SoftmaxEql::new(&[3, 1], 1.5)
                .unwrap_err()
                .contains("lambda = 1.5")
        );
    }
}
