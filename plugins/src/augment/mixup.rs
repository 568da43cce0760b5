//! mixup (Zhang et al., ICLR 2018): train on convex combinations of pairs of images and of their
//! labels, `x = lam x_i + (1 - lam) x_perm(i)`, loss `lam l(y_i) + (1 - lam) l(y_perm(i))`, with
//! `lam ~ Beta(alpha, alpha)` drawn once per batch and a random permutation as partners.

use rand::Rng;

use super::{AugmentError, MixedBatch, Result, check_batch, check_perm, random_perm, sample_beta};

/// The pure mixup of a batch (`labels.len()` images of `image_len` values) with a given `lam` and
/// partner permutation `perm`: `x_i <- lam x_i + (1 - lam) x_perm[i]` (numpy:
/// `lam * x + (1 - lam) * x[perm]`), `labels_b = y[perm]`, every `lam[i] = lam`.
pub fn mixup_with(
    pixels: &[f32],
    labels: &[u32],
    image_len: usize,
    lam: f32,
    perm: &[usize],
) -> Result<MixedBatch> {
    if !(0.0..=1.0).contains(&lam) {
        return Err(AugmentError::Lambda { lam });
    }
    let n = labels.len();
    check_batch(pixels, labels, image_len)?;
    check_perm(perm, n)?;
    Ok(MixedBatch {
        pixels: blend(pixels, image_len, lam, perm),
        labels_a: labels.to_vec(),
        labels_b: perm.iter().map(|&j| labels[j]).collect(),
        lam: vec![lam; n],
    })
}

/// mixup with `lam ~ Beta(alpha, alpha)` (the paper's default `alpha = 1` is uniform) and a
/// uniformly random permutation, both drawn from `rng` (lam first).
pub fn mixup(
    pixels: &[f32],
    labels: &[u32],
    image_len: usize,
    alpha: f64,
    rng: &mut impl Rng,
) -> Result<MixedBatch> {
    let lam = sample_beta(alpha, rng)?;
    let perm = random_perm(labels.len(), rng);
    mixup_with(pixels, labels, image_len, lam, &perm)
}

/// `lam x_i + (1 - lam) x_perm[i]` for every image; shared with Remix. Inputs already checked.
pub(super) fn blend(pixels: &[f32], image_len: usize, lam: f32, perm: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(pixels.len());
    for (i, &j) in perm.iter().enumerate() {
        let a = &pixels[i * image_len..(i + 1) * image_len];
        let b = &pixels[j * image_len..(j + 1) * image_len];
        out.extend(a.iter().zip(b).map(|(&a, &b)| lam * a + (1.0 - lam) * b));
    }
    out
}
