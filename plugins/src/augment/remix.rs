//! Remix (Chou et al., ECCV Workshops 2020): mix images as mixup does, but give the label weight to
//! the minority class of an imbalanced pair, pushing decision boundaries toward the majority.

use rand::Rng;

use super::mixup::blend;
use super::{AugmentError, MixedBatch, Result, check_batch, check_perm, random_perm, sample_beta};

/// Remix's hyper-parameters; the paper's defaults are `kappa = 3`, `tau = 0.5`, `alpha = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemixParams {
    /// mixup's Beta parameter for the image mixing factor `lam_x`.
    pub alpha: f64,
    /// Imbalance ratio `kappa` above which a pair counts as majority/minority.
    pub kappa: f64,
    /// Pixel-share threshold `tau`.
    pub tau: f64,
}

impl Default for RemixParams {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            kappa: 3.0,
            tau: 0.5,
        }
    }
}

/// The label weights of Remix (Chou et al. 2020, eq. 5), for sample `i` mixed as
/// `lam_x x_i + (1 - lam_x) x_j` with partner `j = perm[i]`, `n_i`/`n_j` the training counts of
/// their classes; the weight is that of `y_i`:
///
/// - `lam_y = 0` if `n_i / n_j >= kappa` and `lam_x < tau` (i is the majority class and shows
///   less than `tau` of the pixels: the label goes to the minority partner);
/// - `lam_y = 1` if `n_i / n_j <= 1 / kappa` and `1 - lam_x < tau` (i is the minority class);
/// - `lam_y = lam_x` otherwise (plain mixup).
///
/// This is the paper's convention, also that of the authors' `imbalanced-DL` code.
pub fn remix_lambdas(
    labels: &[u32],
    perm: &[usize],
    class_counts: &[usize],
    lam_x: f32,
    params: &RemixParams,
) -> Result<Vec<f32>> {
    check_perm(perm, labels.len())?;
    for (name, value) in [("kappa", params.kappa), ("tau", params.tau)] {
        if !(value.is_finite() && value > 0.0) {
            return Err(AugmentError::Parameter { name, value });
        }
    }
    let count = |index: usize| {
        let label = labels[index];
        match class_counts.get(label as usize) {
            Some(&n) if n > 0 => Ok(n as f64),
            _ => Err(AugmentError::Count {
                index,
                label,
                classes: class_counts.len(),
            }),
        }
    };
    let lam = lam_x as f64;
    perm.iter()
        .enumerate()
        .map(|(i, &j)| {
            let ratio = count(i)? / count(j)?;
            Ok(if ratio >= params.kappa && lam < params.tau {
                0.0
            } else if ratio <= 1.0 / params.kappa && 1.0 - lam < params.tau {
                1.0
            } else {
                lam_x
            })
        })
        .collect()
}

/// The pure Remix of a batch: pixels as [`super::mixup_with`] with `lam_x`, labels weighted by
/// [`remix_lambdas`] (so `lam` differs per sample).
pub fn remix_with(
    pixels: &[f32],
    labels: &[u32],
    image_len: usize,
    lam_x: f32,
    perm: &[usize],
    class_counts: &[usize],
    params: &RemixParams,
) -> Result<MixedBatch> {
    if !(0.0..=1.0).contains(&lam_x) {
        return Err(AugmentError::Lambda { lam: lam_x });
    }
    check_batch(pixels, labels, image_len)?;
    let lam = remix_lambdas(labels, perm, class_counts, lam_x, params)?;
    Ok(MixedBatch {
        pixels: blend(pixels, image_len, lam_x, perm),
        labels_a: labels.to_vec(),
        labels_b: perm.iter().map(|&j| labels[j]).collect(),
        lam,
    })
}

/// Remix with `lam_x ~ Beta(alpha, alpha)` and a random permutation drawn from `rng` (lam first).
pub fn remix(
    pixels: &[f32],
    labels: &[u32],
    image_len: usize,
    class_counts: &[usize],
    params: &RemixParams,
    rng: &mut impl Rng,
) -> Result<MixedBatch> {
    let lam_x = sample_beta(params.alpha, rng)?;
    let perm = random_perm(labels.len(), rng);
    remix_with(
        pixels,
        labels,
        image_len,
        lam_x,
        &perm,
        class_counts,
        params,
    )
}
