//! Label-aware smoothing: label smoothing whose strength grows with the class' size, so the
//! over-confident head classes are smoothed most and the tail least (MiSLAS's stage-2 loss).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use super::Loss;
use super::class_stats::{check_param, validate_counts};
use super::error::Result;

/// Label-aware smoothing (Zhong et al., "Improving Calibration for Long-Tailed Recognition",
/// CVPR 2021, Eq. 5, the "concave" shape; reference code dvlab-research/MiSLAS
/// `LabelAwareSmoothing`):
///
/// `l(z, y) = (1 - e_y) (-log p_y) + e_y mean_c (-log p_c)`, `p = softmax(z)`,
/// `e_c = tail + (head - tail) sin(pi (n_c - n_K) / (2 (n_1 - n_K)))` with `n_1`, `n_K` the
/// largest and smallest class. When every class has as many images (`n_1 = n_K`, a balanced
/// reference run) the reference divides 0 by 0; here every class is a head class (`e_c =
/// head`).
#[derive(Debug, Clone)]
pub struct LabelAwareSmoothing {
    smoothing: Vec<f32>,
}

impl LabelAwareSmoothing {
    /// The MiSLAS CIFAR-10 configs' values (CIFAR-100 uses 0.4 and 0.1).
    pub const DEFAULT_HEAD: f64 = 0.3;
    pub const DEFAULT_TAIL: f64 = 0.0;

    /// From the per-class training counts (all > 0); `0 <= tail, head < 1`.
    pub fn new(counts: &[usize], head: f64, tail: f64) -> Result<Self> {
        const NAME: &str = "label-aware-smoothing";
        let counts = validate_counts(NAME, counts)?;
        let unit = |v: f64| (0.0..1.0).contains(&v);
        let head = check_param(NAME, "smooth_head", head, "0 <= smooth_head < 1", unit)?;
        let tail = check_param(NAME, "smooth_tail", tail, "0 <= smooth_tail < 1", unit)?;
        let n1 = counts.iter().copied().fold(f64::MIN, f64::max);
        let nk = counts.iter().copied().fold(f64::MAX, f64::min);
        let smoothing = counts
            .iter()
            .map(|&n| {
                if n1 > nk {
                    let x = (n - nk) * std::f64::consts::PI / (2.0 * (n1 - nk));
                    (tail + (head - tail) * x.sin()) as f32
                } else {
                    head as f32
                }
            })
            .collect();
        Ok(Self { smoothing })
    }

    /// `e_c` per class.
    pub fn smoothing(&self) -> &[f32] {
        &self.smoothing
    }
}

impl Loss for LabelAwareSmoothing {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [n, _] = logits.dims();
        let device = logits.device();
        let eps = Tensor::<1>::from_data(
            TensorData::new(self.smoothing.clone(), [self.smoothing.len()]),
            &device,
        )
        .select(0, labels.clone());
        let logp = log_softmax(logits, 1);
        let nll = logp
            .clone()
            .gather(1, labels.reshape([n, 1]))
            .reshape([n])
            .neg();
        let smooth = logp.mean_dim(1).reshape([n]).neg();
        eps.clone().neg().add_scalar(1.0) * nll + eps * smooth
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.smoothing.len())
    }
}
