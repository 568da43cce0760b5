//! Per-class statistics shared by the re-balancing losses: validated counts `n_c`, the re-weighting
//! vectors (inverse frequency, effective number), the label prior `log pi_c`, and range checks.
//! Computed once in f64 at construction so the training hot path only gathers from small vectors.

use super::error::{LossError, Result};

/// Checks that the counts are non-empty and all positive; returns them as f64.
pub(crate) fn validate_counts(loss: &'static str, counts: &[usize]) -> Result<Vec<f64>> {
    if counts.is_empty() {
        return Err(LossError::EmptyCounts { loss });
    }
    if let Some(class) = counts.iter().position(|&n| n == 0) {
        return Err(LossError::ZeroCount { loss, class });
    }
    Ok(counts.iter().map(|&n| n as f64).collect())
}

/// Checks that `value` is finite and satisfies `ok`, otherwise names the parameter and its range.
pub(crate) fn check_param(
    loss: &'static str,
    param: &'static str,
    value: f64,
    allowed: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Result<f64> {
    if value.is_finite() && ok(value) {
        Ok(value)
    } else {
        Err(LossError::InvalidParameter {
            loss,
            param,
            value,
            allowed,
        })
    }
}

/// Checks the class-balanced `beta`: `0 <= beta < 1`.
pub(crate) fn check_beta(loss: &'static str, beta: f64) -> Result<f64> {
    check_param(loss, "beta", beta, "0 <= beta < 1", |b| {
        (0.0..1.0).contains(&b)
    })
}

/// Scales `w` so that `sum_c w_c = C` (the convention of Cui et al. and kaidic/LDAM-DRW).
fn normalize_to_num_classes(w: Vec<f64>) -> Vec<f32> {
    let total: f64 = w.iter().sum();
    let c = w.len() as f64;
    w.iter().map(|&x| (x / total * c) as f32).collect()
}

/// Inverse-frequency weights `w_c ∝ 1 / n_c`, normalized so `sum_c w_c = C`.
pub(crate) fn inverse_frequency_weights(counts: &[f64]) -> Vec<f32> {
    normalize_to_num_classes(counts.iter().map(|&n| 1.0 / n).collect())
}

/// Effective-number weights of Cui et al. (CVPR 2019), `w_c = (1 - beta) / (1 - beta^{n_c})`,
/// normalized so `sum_c w_c = C`. `beta = 0` gives all ones.
pub(crate) fn effective_number_weights(counts: &[f64], beta: f64) -> Vec<f32> {
    normalize_to_num_classes(
        counts
            .iter()
            .map(|&n| (1.0 - beta) / (1.0 - beta.powf(n)))
            .collect(),
    )
}

/// The label prior in log space, `log pi_c = log(n_c / sum_k n_k)`.
pub(crate) fn log_prior_of(counts: &[f64]) -> Vec<f32> {
    let total: f64 = counts.iter().sum();
    counts.iter().map(|&n| (n / total).ln() as f32).collect()
}

/// The label prior `log pi_c` of the training set, for [`super::posthoc_adjust`] at evaluation.
/// Errors if `counts` is empty or has a zero.
pub fn log_prior(counts: &[usize]) -> Result<Vec<f32>> {
    Ok(log_prior_of(&validate_counts("log_prior", counts)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_validated() {
        assert_eq!(
            validate_counts("x", &[]),
            Err(LossError::EmptyCounts { loss: "x" })
        );
        assert_eq!(
            validate_counts("x", &[3, 0, 1]),
            Err(LossError::ZeroCount {
                loss: "x",
                class: 1
            })
        );
    }

    #[test]
    fn weights_sum_to_num_classes() {
        let counts = [5000.0, 500.0, 50.0];
        for w in [
            inverse_frequency_weights(&counts),
            effective_number_weights(&counts, 0.999),
            effective_number_weights(&counts, 0.0),
        ] {
            let s: f32 = w.iter().sum();
            assert!((s - 3.0).abs() < 1e-5, "{w:?}");
        }
        assert_eq!(effective_number_weights(&counts, 0.0), vec![1.0; 3]);
    }

    #[test]
    fn beta_range_is_named() {
        let err = check_beta("class_balanced", 1.0).unwrap_err();
        assert!(err.to_string().contains("0 <= beta < 1"), "{err}");
        assert!(check_beta("class_balanced", f64::NAN).is_err());
        assert!(check_beta("class_balanced", 0.0).is_ok());
    }
}
