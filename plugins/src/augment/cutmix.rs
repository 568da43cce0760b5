//! CutMix (Yun et al., ICCV 2019): paste a rectangle of the partner image into each image and
//! weight the labels by area, `lam = 1 - box_area / (H W)`, with the box's size drawn from
//! `lam ~ Beta(alpha, alpha)` and its centre uniformly, as in the authors' `rand_bbox`.

use rand::Rng;

use super::{AugmentError, MixedBatch, Result, check_batch, check_perm, random_perm, sample_beta};

/// A rectangle of rows `y0..y1` and columns `x0..x1` (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl CutBox {
    /// The box, when it lies inside an `h` x `w` image (a typed error naming both otherwise).
    pub fn within(self, h: usize, w: usize) -> Result<Self> {
        let CutBox { y0, y1, x0, x1 } = self;
        if y0 > y1 || y1 > h || x0 > x1 || x1 > w {
            return Err(AugmentError::CutBox {
                y0,
                y1,
                x0,
                x1,
                h,
                w,
            });
        }
        Ok(self)
    }

    pub fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// The box of the official `rand_bbox` for a drawn `lam` and centre `(cy, cx)`: sides
/// `cut_h = int(h sqrt(1 - lam))`, `cut_w = int(w sqrt(1 - lam))`, rows
/// `clip(cy - cut_h // 2, 0, h)..clip(cy + cut_h // 2, 0, h)` and likewise for columns. (The
/// official code names the two image axes the other way round; for square images they agree.)
pub fn cutmix_box(h: usize, w: usize, lam: f32, cy: usize, cx: usize) -> Result<CutBox> {
    if !(0.0..=1.0).contains(&lam) {
        return Err(AugmentError::Lambda { lam });
    }
    let cut_rat = (1.0 - lam as f64).sqrt();
    let half_h = (h as f64 * cut_rat) as usize / 2;
    let half_w = (w as f64 * cut_rat) as usize / 2;
    Ok(CutBox {
        y0: cy.saturating_sub(half_h).min(h),
        y1: cy.saturating_add(half_h).min(h),
        x0: cx.saturating_sub(half_w).min(w),
        x1: cx.saturating_add(half_w).min(w),
    })
}

/// The pure CutMix of a batch of `labels.len()` CHW images (`c x h x w`): inside `cut` each image
/// takes the pixels of its partner `perm[i]` (numpy: `x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1,
/// x0:x1]`); `labels_b = y[perm]` and every `lam[i] = 1 - area / (h w)`, the exact kept fraction.
#[allow(clippy::too_many_arguments)]
pub fn cutmix_with(
    pixels: &[f32],
    labels: &[u32],
    c: usize,
    h: usize,
    w: usize,
    perm: &[usize],
    cut: CutBox,
) -> Result<MixedBatch> {
    let image_len = c * h * w;
    check_batch(pixels, labels, image_len)?;
    check_perm(perm, labels.len())?;
    let CutBox { y0, y1, x0, x1 } = cut.within(h, w)?;
    let mut out = pixels.to_vec();
    for (i, &j) in perm.iter().enumerate() {
        for ch in 0..c {
            for y in y0..y1 {
                let row = (ch * h + y) * w;
                let (dst, src) = (i * image_len + row, j * image_len + row);
                out[dst + x0..dst + x1].copy_from_slice(&pixels[src + x0..src + x1]);
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
        labels_b: perm.iter().map(|&j| labels[j]).collect(),
        lam: vec![lam; labels.len()],
    })
}

/// CutMix with `lam ~ Beta(alpha, alpha)` (paper: `alpha = 1`), a random permutation and a box
/// centre `cy ~ U{0..h}`, `cx ~ U{0..w}`, drawn from `rng` in that order. Applying it only to a
/// fraction of batches (the paper's `cutmix_prob`) is the caller's choice.
#[allow(clippy::too_many_arguments)]
pub fn cutmix(
    pixels: &[f32],
    labels: &[u32],
    c: usize,
    h: usize,
    w: usize,
    alpha: f64,
    rng: &mut impl Rng,
) -> Result<MixedBatch> {
    let lam = sample_beta(alpha, rng)?;
    let perm = random_perm(labels.len(), rng);
    let cy = rng.random_range(0..h.max(1));
    let cx = rng.random_range(0..w.max(1));
    let cut = cutmix_box(h, w, lam, cy, cx)?;
    cutmix_with(pixels, labels, c, h, w, &perm, cut)
}
