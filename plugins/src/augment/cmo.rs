//! CMO, minority-oversampled CutMix (Park et al., "The Majority Can Help the Minority:
//! Context-rich Minority Oversampling for Long-tailed Classification", CVPR 2022; naver-ai/cmo,
//! `cifar_train.py`): each image of the batch (drawn as usual, instance-balanced) gets a box of
//! the image beside it in a second batch drawn by a minority-weighted sampler (the run's
//! `rebalance.second_sampler`; CMO's `get_weighted_sampler` with its default `weighted_alpha =
//! 1` weighs each image by `1 / n_c`, i.e. every class equally likely: `class-balanced`), and
//! the labels are weighted by area:
//!
//! `x_i[box] = x2_i[box]`, `lam = 1 - |box| / (H W)`, `L = lam l(z_i, y_i) + (1 - lam) l(z_i, y2_i)`,
//!
//! the box from `lam ~ Beta(beta, beta)` and a uniform centre as CutMix's `rand_bbox`
//! ([`super::cutmix_box`]), applied to a batch with probability `prob` (`mixup_prob`) and only in
//! the epochs `start < epoch < epochs - end` (0-based; `start_data_aug`, `end_data_aug`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{
    AugmentError, BatchMixer, CutBox, MixedBatch, Result, check_batch, cutmix_box, sample_beta,
};

/// CMO's parameters (its `opts.py` defaults: 0.5, 1, 3, 3).
#[derive(Debug, Clone, PartialEq)]
pub struct Cmo {
    /// Probability that a batch is mixed (`mixup_prob`).
    pub prob: f64,
    /// `lam ~ Beta(alpha, alpha)` (`beta`).
    pub alpha: f64,
    /// Batches are mixed only from epoch `start + 1` (`start_data_aug`)...
    pub start: usize,
    /// ...to epoch `epochs - end - 1` (`end_data_aug`), 0-based.
    pub end: usize,
}

impl Cmo {
    /// Whether batches of 0-based `epoch` of `epochs` may be mixed: `start < epoch < epochs - end`.
    pub fn active(&self, epoch: usize, epochs: usize) -> bool {
        self.start < epoch && epoch + self.end < epochs
    }
}

/// The pure CMO paste: inside `cut` each image `i` takes the pixels of the second stream's image
/// `i` (`input[:, :, x1:x2, y1:y2] = input2[:, :, x1:x2, y1:y2]`); `labels_b` are the second
/// stream's labels and every `lam[i] = 1 - area / (h w)`.
#[allow(clippy::too_many_arguments)]
pub fn cmo_with(
    pixels: &[f32],
    labels: &[u32],
    fg_pixels: &[f32],
    fg_labels: &[u32],
    c: usize,
    h: usize,
    w: usize,
    cut: CutBox,
) -> Result<MixedBatch> {
    let image_len = c * h * w;
    check_batch(pixels, labels, image_len)?;
    if fg_labels.len() != labels.len() {
        return Err(AugmentError::Length {
            what: "the second stream's labels",
            expected: labels.len(),
            got: fg_labels.len(),
        });
    }
    check_batch(fg_pixels, fg_labels, image_len)?;
    let CutBox { y0, y1, x0, x1 } = cut.within(h, w)?;
    let mut out = pixels.to_vec();
    for i in 0..labels.len() {
        for ch in 0..c {
            for y in y0..y1 {
                let at = i * image_len + (ch * h + y) * w;
                out[at + x0..at + x1].copy_from_slice(&fg_pixels[at + x0..at + x1]);
            }
        }
    }
    let lam = if h * w == 0 {
        1.0
    } else {
        (1.0 - cut.area() as f64 / (h * w) as f64) as f32
    };
    Ok(MixedBatch {
        pixels: out,
        labels_a: labels.to_vec(),
        labels_b: fg_labels.to_vec(),
        lam: vec![lam; labels.len()],
    })
}

impl BatchMixer for Cmo {
    /// CMO pastes from the second stream: a batch without one is an error.
    fn mix(
        &self,
        _: &mut Vec<f32>,
        _: [usize; 3],
        _: &[u32],
        _: &[usize],
        _: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        Err(AugmentError::NoSecondStream { mixer: "cmo" })
    }

    fn takes_second_stream(&self) -> bool {
        true
    }

    /// Draws `r ~ U[0, 1)` and, in the active epochs when `r < prob`, `lam`, then the box
    /// centre's row and column, in that order (`cifar_train.py`: `np.random.rand(1)`, then
    /// `np.random.beta`, then `rand_bbox`'s two `randint`s).
    fn mix_with_second(
        &self,
        pixels: &mut Vec<f32>,
        [c, h, w]: [usize; 3],
        labels: &[u32],
        (fg_pixels, fg_labels): (&[f32], &[u32]),
        _: &[usize],
        (epoch, epochs): (usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<(Vec<u32>, Vec<f32>)>> {
        if !self.active(epoch, epochs) {
            return Ok(None);
        }
        let r: f64 = rng.random();
        if r >= self.prob {
            return Ok(None);
        }
        let lam = sample_beta(self.alpha, rng)?;
        let cy = rng.random_range(0..h.max(1));
        let cx = rng.random_range(0..w.max(1));
        let cut = cutmix_box(h, w, lam, cy, cx)?;
        let mixed = cmo_with(pixels, labels, fg_pixels, fg_labels, c, h, w, cut)?;
        *pixels = mixed.pixels;
        Ok(Some((mixed.labels_b, mixed.lam)))
    }
}

#[cfg(test)]
mod tests {
    //! CMO against its authors' code (bench/fixtures/cmo.py -> tests/fixtures/cmo.json): the
    //! box, the pasted pixels, the area-weighted lam, the mixed loss through `losses::combine`,
    //! and the class probabilities of its weighted sampler (cauda's `class-balanced`).

    use burn::tensor::{Device, Int, Tensor, TensorData};
    use rand::SeedableRng;
    use serde::Deserialize;

    use super::*;
    use crate::losses::{CrossEntropy, Mixup, combine};
    use crate::samplers::{ClassBalanced, Sampler};

    const FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cmo.json"
    ));

    #[derive(Deserialize)]
    struct Fixture {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        classes: usize,
        input: Vec<f32>,
        input2: Vec<f32>,
        target: Vec<u32>,
        target2: Vec<u32>,
        logits: Vec<f32>,
        cases: Vec<Case>,
        sampler: SamplerCase,
    }

    #[derive(Deserialize)]
    struct Case {
        lam: f32,
        row_centre: usize,
        col_centre: usize,
        /// Rows `[y0, y1)` then columns `[x0, x1)`.
        r#box: [usize; 4],
        lam_adjusted: f64,
        pixels: Vec<f32>,
        loss: f64,
    }

    #[derive(Deserialize)]
    struct SamplerCase {
        counts: Vec<usize>,
        weighted_alpha_1: Vec<f64>,
    }

    #[test]
    fn cmo_matches_its_authors_code() {
        let f: Fixture = serde_json::from_str(FIXTURE).expect("cmo.json parses");
        assert_eq!(f.cases.len(), 6);
        let device = Device::default();
        let int = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [f.n]), &device)
        };
        for case in &f.cases {
            let cut = cutmix_box(f.h, f.w, case.lam, case.row_centre, case.col_centre).unwrap();
            assert_eq!(
                [cut.y0, cut.y1, cut.x0, cut.x1],
                case.r#box,
                "lam {}",
                case.lam
            );
            let m = cmo_with(
                &f.input, &f.target, &f.input2, &f.target2, f.c, f.h, f.w, cut,
            )
            .unwrap();
            assert_eq!(m.pixels, case.pixels, "lam {}: pasted pixels", case.lam);
            assert_eq!(m.labels_b, f.target2);
            assert!(
                m.lam
                    .iter()
                    .all(|&l| (f64::from(l) - case.lam_adjusted).abs() < 1e-6)
            );
            let z = Tensor::<2>::from_data(
                TensorData::new(f.logits.clone(), [f.n, f.classes]),
                &device,
            );
            let mix = Mixup {
                labels_b: int(&m.labels_b),
                lam: Tensor::<1>::from_data(TensorData::new(m.lam.clone(), [f.n]), &device),
            };
            let loss = combine(&CrossEntropy, z, int(&f.target), Some(mix), 0)
                .unwrap()
                .into_scalar::<f32>();
            assert!(
                (f64::from(loss) - case.loss).abs() <= 1e-5 * (1.0 + case.loss.abs()),
                "lam {}: loss {loss}, want {}",
                case.lam,
                case.loss
            );
        }
        let p = ClassBalanced.class_probabilities(&f.sampler.counts, 0, 1);
        for (got, want) in p.iter().zip(&f.sampler.weighted_alpha_1) {
            assert!((got - want).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn cmo_mixes_only_in_its_epochs_with_its_probability_and_needs_the_stream() {
        let (c, h, w, n) = (1, 4, 4, 3);
        let px: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
        let fg: Vec<f32> = vec![-1.0; n * c * h * w];
        let (y, y2) = (vec![0u32, 1, 2], vec![2u32, 2, 0]);
        let always = Cmo {
            prob: 1.0,
            alpha: 1.0,
            start: 3,
            end: 3,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let at = |e| (e, 10);
        for epoch in [0, 3, 7, 9] {
            let mut p = px.clone();
            let got = always
                .mix_with_second(&mut p, [c, h, w], &y, (&fg, &y2), &[], at(epoch), &mut rng)
                .unwrap();
            assert!(got.is_none(), "epoch {epoch} is outside 3 < t < 10 - 3");
            assert_eq!(p, px);
        }
        let mut mixed = 0;
        for _ in 0..20 {
            let mut p = px.clone();
            if let Some((b, lam)) = always
                .mix_with_second(&mut p, [c, h, w], &y, (&fg, &y2), &[], at(5), &mut rng)
                .unwrap()
            {
                assert_eq!(b, y2);
                let pasted = p.iter().filter(|&&v| v == -1.0).count();
                assert!((1.0 - pasted as f32 / p.len() as f32 - lam[0]).abs() < 1e-6);
                mixed += 1;
            }
        }
        assert_eq!(mixed, 20);
        let never = Cmo {
            prob: 0.0,
            ..always.clone()
        };
        let mut p = px.clone();
        assert!(
            never
                .mix_with_second(&mut p, [c, h, w], &y, (&fg, &y2), &[], at(5), &mut rng)
                .unwrap()
                .is_none()
        );
        let err = always
            .mix(&mut p, [c, h, w], &y, &[], &mut rng)
            .unwrap_err();
        assert_eq!(err, AugmentError::NoSecondStream { mixer: "cmo" });
        assert!(err.to_string().contains("second_sampler"));
    }
}
