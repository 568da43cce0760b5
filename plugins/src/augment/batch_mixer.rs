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

    /// Whether the mixer takes the stage's second sampler stream (CMO pastes from its images):
    /// the loop then calls [`BatchMixer::mix_with_second`], and the stream goes no further.
    fn takes_second_stream(&self) -> bool {
        false
    }

    /// Mixes the batch with the second stream's batch `(pixels, labels)` (as many images), at
    /// 0-based epoch `at.0` of `at.1`; `None` leaves the batch unmixed. By default: [`mix`].
    ///
    /// [`mix`]: BatchMixer::mix
    #[allow(clippy::too_many_arguments)]
    fn mix_with_second(
        &self,
        pixels: &mut Vec<f32>,
        chw: [usize; 3],
        labels: &[u32],
        _second: (&[f32], &[u32]),
        class_counts: &[usize],
        _at: (usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<(Vec<u32>, Vec<f32>)>> {
        self.mix(pixels, chw, labels, class_counts, rng).map(Some)
    }
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
