//! Post-hoc logit adjustment: turns a model trained with plain CE on long-tailed data into a balanced
//! classifier at evaluation time, with no retraining.

use burn::tensor::Tensor;

use super::class_stats::check_param;
use super::error::{LossError, Result};

/// Post-hoc logit adjustment (Menon et al., "Long-Tail Learning via Logit Adjustment", ICLR 2021, Eq. 9):
///
/// `z'_c = z_c - tau log pi_c`, predict `argmax_c z'_c`.
///
/// `log_prior` is `log pi_c` of the training set (see [`super::log_prior`]), one per logit column;
/// `tau` must be finite and `>= 0` (`tau = 0` returns the logits unchanged).
pub fn posthoc_adjust(logits: Tensor<2>, log_prior: &[f32], tau: f64) -> Result<Tensor<2>> {
    let tau = check_param("posthoc_adjust", "tau", tau, "tau >= 0", |t| t >= 0.0)?;
    let [_, c] = logits.dims();
    if log_prior.len() != c {
        return Err(LossError::ClassMismatch {
            what: "log_prior",
            expected: c,
            got: log_prior.len(),
        });
    }
    let shift: Vec<f32> = log_prior
        .iter()
        .map(|&lp| (tau * f64::from(lp)) as f32)
        .collect();
    let shift = Tensor::<1>::from_floats(shift.as_slice(), &logits.device()).reshape([1, c]);
    Ok(logits - shift)
}
