//! The large benchmarks' image transforms, as the papers' PyTorch loaders apply them to PIL
//! images: for training `RandomResizedCrop(side)` (scale 0.08..1, aspect 3/4..4/3, ten tries
//! then a center crop) + `RandomHorizontalFlip()` + optional `ColorJitter`; for evaluation
//! `Resize(side / 0.875)` (256 for 224) + `CenterCrop(side)`. The geometry follows torchvision's
//! code (Python's round-half-even included) and the resizing is Pillow's ([`resample`]), so
//! given the same draws the output bytes are torchvision's.
//!
//! [`resample`]: super::resample

use rand::Rng;

use super::color_jitter::{ColorJitter, JitterDraw, apply_jitter};
use super::resample::{Rgb, resize_bilinear};

/// A crop window: `top`, `left`, `height`, `width` (torchvision's `i, j, h, w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// Python's `int(round(x))` (ties to even).
fn py_round(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// `RandomResizedCrop.get_params` with scale `(0.08, 1)` and ratio `(3/4, 4/3)`.
pub fn random_resized_crop_window(width: usize, height: usize, rng: &mut impl Rng) -> Window {
    let (scale, ratio) = ((0.08f64, 1.0f64), (3.0f64 / 4.0, 4.0f64 / 3.0));
    let area = (width * height) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..scale.1);
        let aspect = rng.random_range(lr0..lr1).exp();
        let w = py_round((target * aspect).sqrt());
        let h = py_round((target / aspect).sqrt());
        if 0 < w && w <= width && 0 < h && h <= height {
            return Window {
                top: rng.random_range(0..=height - h),
                left: rng.random_range(0..=width - w),
                height: h,
                width: w,
            };
        }
    }
    center_window_of_ratio(width, height, ratio)
}

/// The fallback of `RandomResizedCrop.get_params`: the largest centered window within `ratio`.
fn center_window_of_ratio(width: usize, height: usize, ratio: (f64, f64)) -> Window {
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, py_round(width as f64 / ratio.0))
    } else if in_ratio > ratio.1 {
        (py_round(height as f64 * ratio.1), height)
    } else {
        (width, height)
    };
    Window {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// `F.resized_crop(img, window, (side, side))`: crop, then Pillow's bilinear resize.
pub fn resized_crop(img: &Rgb, win: Window, side: usize) -> Rgb {
    let cropped = img.crop(win.left, win.top, win.width, win.height);
    resize_bilinear(&cropped, side, side)
}

/// The evaluation resize's shorter side for a crop of `side`: `round(side / 0.875)` (256 for 224).
pub fn eval_short_side(side: usize) -> usize {
    (side as f64 / 0.875).round() as usize
}

/// `Resize(short)` + `CenterCrop(side)` on a PIL image, with `short = eval_short_side(side)`.
pub fn eval_transform(img: &Rgb, side: usize) -> Rgb {
    let short = eval_short_side(side);
    let (w, h) = (img.width, img.height);
    // torchvision's _compute_resized_output_size: the long side is int(short * long / short_in).
    let (nw, nh) = if w <= h {
        (short, ((short * h) as f64 / w as f64) as usize)
    } else {
        (((short * w) as f64 / h as f64) as usize, short)
    };
    let resized = resize_bilinear(img, nw.max(1), nh.max(1));
    center_crop(&resized, side)
}

/// `CenterCrop(side)` of an image at least `side` on each side.
fn center_crop(img: &Rgb, side: usize) -> Rgb {
    let top = py_round((img.height - side) as f64 / 2.0);
    let left = py_round((img.width - side) as f64 / 2.0);
    img.crop(left, top, side, side)
}

/// The training transform: random resized crop to `side`, a coin-flip mirror when `flip`, and
/// colour jitter when given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainTransform {
    pub side: usize,
    pub flip: bool,
    pub jitter: Option<ColorJitter>,
}

/// What one image drew: its window, its mirror, its jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainDraw {
    pub window: Window,
    pub flip: bool,
    pub jitter: Option<JitterDraw>,
}

impl TrainTransform {
    /// Draws in torchvision's order (crop, flip, jitter) and applies.
    pub fn apply(&self, img: &Rgb, rng: &mut impl Rng) -> (Rgb, TrainDraw) {
        let draw = TrainDraw {
            window: random_resized_crop_window(img.width, img.height, rng),
            flip: self.flip && rng.random_bool(0.5),
            jitter: self.jitter.map(|j| j.draw(rng)),
        };
        (self.apply_draw(img, &draw), draw)
    }

    /// Applies given draws.
    pub fn apply_draw(&self, img: &Rgb, draw: &TrainDraw) -> Rgb {
        let mut out = resized_crop(img, draw.window, self.side);
        if draw.flip {
            out = out.flip_horizontal();
        }
        if let Some(j) = &draw.jitter {
            apply_jitter(&mut out, j);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn rounding_is_pythons() {
        assert_eq!(py_round(16.5), 16);
        assert_eq!(py_round(17.5), 18);
        assert_eq!(eval_short_side(224), 256);
        assert_eq!(eval_short_side(32), 37);
    }

    #[test]
    fn windows_fit_and_cover_the_scale_and_ratio_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (w, h) = (500, 375);
        let (mut small, mut large) = (false, false);
        for _ in 0..2000 {
            let win = random_resized_crop_window(w, h, &mut rng);
            assert!(win.left + win.width <= w && win.top + win.height <= h);
            let frac = (win.width * win.height) as f64 / (w * h) as f64;
            small |= frac < 0.15;
            large |= frac > 0.7;
            let r = win.width as f64 / win.height as f64;
            assert!((0.70..=1.45).contains(&r) || frac > 0.5, "ratio {r}");
        }
        assert!(small && large);
        // A thin strip never fits the ratio in ten tries' worth of windows: the fallback.
        let win = center_window_of_ratio(400, 10, (0.75, 4.0 / 3.0));
        assert_eq!((win.width, win.height, win.left, win.top), (13, 10, 193, 0));
    }

    #[test]
    fn eval_transform_gives_the_side() {
        let img = Rgb {
            width: 61,
            height: 40,
            pixels: vec![9; 61 * 40 * 3],
        };
        let out = eval_transform(&img, 32);
        assert_eq!((out.width, out.height), (32, 32));
        assert!(out.pixels.iter().all(|&p| p == 9));
    }
}
