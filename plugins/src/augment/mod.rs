//! Data augmentation for long-tailed training: the standard CIFAR crop-and-flip on u8 images, the
//! large benchmarks' torchvision transforms on images of any size ([`imagenet`]: random resized
//! crop, flip, colour jitter, the evaluation resize), and the survey's information-augmentation
//! mixers on f32 batches (mixup, CutMix, Remix, and CMO, which pastes from a second sampler
//! stream's images). Every
//! random choice is either drawn from a caller's RNG or passed explicitly to a pure `*_with`
//! function, so a run is reproducible and each mixer is testable against numpy.

mod batch_mixer;
mod cmo;
pub mod color_jitter;
mod crop_flip;
mod cutmix;
pub mod imagenet;
mod mixup;
mod remix;
pub mod resample;

pub use batch_mixer::{BatchMixer, Mixer};
pub use cmo::{Cmo, cmo_with};
pub use crop_flip::{crop_flip, crop_flip_one};
pub use cutmix::{CutBox, cutmix, cutmix_box, cutmix_with};
pub use mixup::{mixup, mixup_with};
pub use remix::{RemixParams, remix, remix_lambdas, remix_with};

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};

/// Errors of the augmentation layer: inputs whose sizes or values do not fit together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("crop offset ({dx}, {dy}) is outside 0..={max} for padding {pad}", max = 2 * pad)]
    Offset { dx: usize, dy: usize, pad: usize },
    #[error("cut box rows {y0}..{y1}, columns {x0}..{x1} do not fit a {h}x{w} image")]
    CutBox {
        y0: usize,
        y1: usize,
        x0: usize,
        x1: usize,
        h: usize,
        w: usize,
    },
    #[error("the partner indices are not a permutation of 0..{n}")]
    NotAPermutation { n: usize },
    #[error("mixing factor {lam} is not in [0, 1]")]
    Lambda { lam: f32 },
    #[error(
        "{mixer} pastes patches of a second sampler stream's images and the batch has none: add \
         `[rebalance] second_sampler` (CMO's is \"class-balanced\")"
    )]
    NoSecondStream { mixer: &'static str },
    #[error("{name} = {value} must be a positive finite number")]
    Parameter { name: &'static str, value: f64 },
    #[error(
        "label {label} of sample {index} has no training count (counts has {classes} classes, or its count is 0)"
    )]
    Count {
        index: usize,
        label: u32,
        classes: usize,
    },
}

pub type Result<T> = std::result::Result<T, AugmentError>;

/// A mixed batch and its two label sets. The loss of sample `i` is
/// `lam[i] * l(labels_a[i]) + (1 - lam[i]) * l(labels_b[i])`, so `lam` is the weight of
/// `labels_a` (the sample's own label) and `labels_b` is its partner's label.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedBatch {
    /// `N * C * H * W` mixed pixels, image after image, CHW.
    pub pixels: Vec<f32>,
    /// The sample's own label (`y_i`).
    pub labels_a: Vec<u32>,
    /// The partner's label (`y_perm[i]`).
    pub labels_b: Vec<u32>,
    /// Per-sample weight of `labels_a`, in `[0, 1]`.
    pub lam: Vec<f32>,
}

/// Checks `pixels` holds `labels.len()` images of `image_len` values.
fn check_batch(pixels: &[f32], labels: &[u32], image_len: usize) -> Result<()> {
    if pixels.len() != labels.len() * image_len {
        return Err(AugmentError::Length {
            what: "pixels (labels.len() * C * H * W)",
            expected: labels.len() * image_len,
            got: pixels.len(),
        });
    }
    Ok(())
}

/// Checks `perm` is a permutation of `0..n`.
fn check_perm(perm: &[usize], n: usize) -> Result<()> {
    let mut seen = vec![false; n];
    for &p in perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => return Err(AugmentError::NotAPermutation { n }),
        }
    }
    if perm.len() != n {
        return Err(AugmentError::NotAPermutation { n });
    }
    Ok(())
}

/// `lam ~ Beta(alpha, alpha)` (Zhang et al. 2018).
fn sample_beta(alpha: f64, rng: &mut impl Rng) -> Result<f32> {
    let beta = (alpha.is_finite() && alpha > 0.0)
        .then(|| Beta::new(alpha, alpha).ok())
        .flatten()
        .ok_or(AugmentError::Parameter {
            name: "alpha",
            value: alpha,
        })?;
    Ok(beta.sample(rng) as f32)
}

/// A uniformly random permutation of `0..n`.
fn random_perm(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    perm
}

#[cfg(test)]
mod tests;
