//! torchvision's `ColorJitter(brightness, contrast, saturation, hue=0)` on PIL images, which the
//! ImageNet-LT/Places-LT/iNaturalist recipes use (0.4, 0.4, 0.4): the three adjustments in a
//! random order, each a Pillow `ImageEnhance` blend with its own factor drawn from
//! `[1 - s, 1 + s]`. The arithmetic is Pillow's (`Image.blend` in single precision, truncated;
//! the grey level `L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16`), so the bytes match.

use rand::Rng;
use rand::seq::SliceRandom;

use super::resample::Rgb;

/// Pillow's `ImagingBlend(a, b, alpha)`: `a + alpha (b - a)` per byte in single precision,
/// truncated, clipped to 0..=255 when extrapolating.
fn blend(a: u8, b: u8, alpha: f32) -> u8 {
    let t = f32::from(a) + alpha * (f32::from(b) - f32::from(a));
    if (0.0..=1.0).contains(&alpha) {
        t as u8
    } else if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// Pillow's RGB to `L` conversion.
fn grey(p: &[u8]) -> u8 {
    ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16)
        as u8
}

/// `ImageEnhance.Color(img).enhance(factor)`: a blend with the image's grey version.
pub fn adjust_saturation(img: &mut Rgb, factor: f32) {
    // Pillow copies one side when alpha is exactly 0 or 1.
    if factor == 1.0 {
        return;
    }
    for px in img.pixels.chunks_exact_mut(3) {
        let d = grey(px);
        for p in px.iter_mut() {
            *p = if factor == 0.0 {
                d
            } else {
                blend(d, *p, factor)
            };
        }
    }
}

/// A blend of every byte with one constant grey `d`, through a table of the 256 results (the
/// same arithmetic, once per value instead of once per byte).
fn blend_constant(img: &mut Rgb, factor: f32, d: u8) {
    if factor == 1.0 {
        return;
    }
    let table: Vec<u8> = (0..=255u8)
        .map(|p| {
            if factor == 0.0 {
                d
            } else {
                blend(d, p, factor)
            }
        })
        .collect();
    for p in &mut img.pixels {
        *p = table[usize::from(*p)];
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: a blend with black.
pub fn adjust_brightness(img: &mut Rgb, factor: f32) {
    blend_constant(img, factor, 0);
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: a blend with the mean grey level (rounded).
pub fn adjust_contrast(img: &mut Rgb, factor: f32) {
    let n = (img.width * img.height).max(1);
    let sum: u64 = img.pixels.chunks_exact(3).map(|p| u64::from(grey(p))).sum();
    let mean = (sum as f64 / n as f64 + 0.5) as u8;
    blend_constant(img, factor, mean);
}

/// Brightness, contrast and saturation strengths (hue stays 0, as in the LT recipes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

/// One draw of [`ColorJitter`]: the order of the adjustments (0 brightness, 1 contrast,
/// 2 saturation, 3 hue, which is skipped) and their factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterDraw {
    pub order: [u8; 4],
    pub factors: [Option<f32>; 3],
}

impl ColorJitter {
    /// Draws the order and the factors as `ColorJitter.get_params` does (a strength of 0 draws
    /// no factor).
    pub fn draw(&self, rng: &mut impl Rng) -> JitterDraw {
        let mut order = [0u8, 1, 2, 3];
        order.shuffle(rng);
        let factor = |s: f32, rng: &mut dyn rand::RngCore| {
            (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..=1.0 + s))
        };
        JitterDraw {
            order,
            factors: [
                factor(self.brightness, rng),
                factor(self.contrast, rng),
                factor(self.saturation, rng),
            ],
        }
    }
}

/// Applies one draw to `img`.
pub fn apply_jitter(img: &mut Rgb, draw: &JitterDraw) {
    for op in draw.order {
        match (op, draw.factors.get(usize::from(op)).copied().flatten()) {
            (0, Some(f)) => adjust_brightness(img, f),
            (1, Some(f)) => adjust_contrast(img, f),
            (2, Some(f)) => adjust_saturation(img, f),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn blends_truncate_and_clip_like_pillow() {
        assert_eq!(blend(0, 100, 0.5), 50);
        assert_eq!(blend(0, 101, 0.5), 50);
        assert_eq!(blend(0, 200, 1.4), 255);
        assert_eq!(blend(100, 0, 1.4), 0);
        assert_eq!(grey(&[255, 255, 255]), 255);
        assert_eq!(grey(&[0, 0, 0]), 0);
        let mut img = Rgb {
            width: 1,
            height: 1,
            pixels: vec![10, 20, 30],
        };
        adjust_saturation(&mut img, 0.0);
        assert!(img.pixels.iter().all(|&p| p == img.pixels[0]));
    }

    #[test]
    fn draws_stay_in_range_and_use_every_order() {
        let j = ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut firsts = [0usize; 4];
        for _ in 0..400 {
            let d = j.draw(&mut rng);
            firsts[usize::from(d.order[0])] += 1;
            for f in d.factors[..2].iter() {
                let f = f.expect("a factor");
                assert!((0.6..=1.4).contains(&f));
            }
            assert_eq!(d.factors[2], None);
        }
        assert!(firsts.iter().all(|&n| n > 60), "{firsts:?}");
    }
}
