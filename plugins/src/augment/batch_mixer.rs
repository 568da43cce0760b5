//! Batch-level information augmentation as a plugin: the trait the training loop calls on each
//! batch of normalized pixels, and its implementation for mixup, CutMix and Remix.

use rand_chacha::ChaCha8Rng;

use super::{MixedBatch, RemixParams, Result, cutmix, mixup, remix};

/// Mixes a batch in place and returns the partner labels and the per-sample weight of the
/// sample's own label (the loss is `lam l(y_a) + (1 - lam) l(y_b)`).
pub trait BatchMixer: Send + Sync + std::fmt::Debug {
    fn mix(
        &self,
        pixels: &mut Vec<f32>,
        chw: [usize; 3],
        labels: &[u32],
        class_counts: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Vec<f32>)>;
}

/// The built-in mixers with their parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Mixer {
    Mixup { alpha: f64 },
    CutMix { alpha: f64 },
    Remix { alpha: f64, kappa: f64, tau: f64 },
}

impl BatchMixer for Mixer {
    fn mix(
        &self,
        pixels: &mut Vec<f32>,
        [c, h, w]: [usize; 3],
        labels: &[u32],
        class_counts: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        let image_len = c * h * w;
        let MixedBatch {
            pixels: mixed,
            labels_b,
            lam,
            ..
        } = match *self {
            Mixer::Mixup { alpha } => mixup(pixels, labels, image_len, alpha, rng)?,
            Mixer::CutMix { alpha } => cutmix(pixels, labels, c, h, w, alpha, rng)?,
            Mixer::Remix { alpha, kappa, tau } => remix(
                pixels,
                labels,
                image_len,
                class_counts,
                &RemixParams { alpha, kappa, tau },
                rng,
            )?,
        };
        *pixels = mixed;
        Ok((labels_b, lam))
    }
}
