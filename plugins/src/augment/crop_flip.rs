//! The standard CIFAR training augmentation (He et al. 2016, used by every long-tailed CIFAR
//! baseline): zero-pad by `pad`, crop back to the original size at a random offset, and flip
//! horizontally with probability 1/2 (torchvision `RandomCrop(size, padding)` +
//! `RandomHorizontalFlip`).

use rand::Rng;

use super::{AugmentError, Result};

/// One image (`c x h x w`, CHW, u8) cropped at offset `(dx, dy)` of its zero-padded version
/// (`0 <= dx, dy <= 2 * pad`), then mirrored left-right when `flip`: in numpy,
/// `np.pad(img, ((0,0),(pad,pad),(pad,pad)))[:, dy:dy+h, dx:dx+w]`, then `[:, :, ::-1]`.
#[allow(clippy::too_many_arguments)]
pub fn crop_flip_one(
    img: &[u8],
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    dx: usize,
    dy: usize,
    flip: bool,
) -> Result<Vec<u8>> {
    if img.len() != c * h * w {
        return Err(AugmentError::Length {
            what: "image (C * H * W)",
            expected: c * h * w,
            got: img.len(),
        });
    }
    if dx > 2 * pad || dy > 2 * pad {
        return Err(AugmentError::Offset { dx, dy, pad });
    }
    let mut out = vec![0u8; img.len()];
    for ch in 0..c {
        for y in 0..h {
            // Row y of the crop is row y + dy - pad of the image (padding outside it).
            let Some(sy) = (y + dy).checked_sub(pad).filter(|&sy| sy < h) else {
                continue;
            };
            let src = &img[(ch * h + sy) * w..(ch * h + sy + 1) * w];
            let dst = &mut out[(ch * h + y) * w..(ch * h + y + 1) * w];
            for (x, d) in dst.iter_mut().enumerate() {
                let cx = if flip { w - 1 - x } else { x };
                if let Some(&v) = (cx + dx).checked_sub(pad).and_then(|sx| src.get(sx)) {
                    *d = v;
                }
            }
        }
    }
    Ok(out)
}

/// [`crop_flip_one`] on every image of a batch (`pixels.len() / (c * h * w)` images), each with
/// its own `dy`, `dx` uniform in `0..=2 * pad` and a fair-coin flip, drawn from `rng` in that
/// order, image after image.
pub fn crop_flip(
    pixels: &[u8],
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    rng: &mut impl Rng,
) -> Result<Vec<u8>> {
    let image_len = c * h * w;
    if image_len == 0 || !pixels.len().is_multiple_of(image_len) {
        return Err(AugmentError::Length {
            what: "pixels (a multiple of C * H * W)",
            expected: pixels.len().div_ceil(image_len.max(1)) * image_len,
            got: pixels.len(),
        });
    }
    let mut out = Vec::with_capacity(pixels.len());
    for img in pixels.chunks_exact(image_len) {
        let dy = rng.random_range(0..=2 * pad);
        let dx = rng.random_range(0..=2 * pad);
        let flip = rng.random_bool(0.5);
        out.extend(crop_flip_one(img, c, h, w, pad, dx, dy, flip)?);
    }
    Ok(out)
}
