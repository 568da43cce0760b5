//! Bilinear resizing exactly as Pillow does it (`Image.resize(size, BILINEAR)`, which torchvision's
//! `Resize` and `RandomResizedCrop` call on PIL images): a triangle filter widened by the scale
//! when shrinking (antialiased), coefficients in 22-bit fixed point, one pass into an 8-bit
//! image, then the other (in Pillow 13's order). Written from Pillow's `libImaging/Resample.c`, so
//! an ImageNet-LT image gets the pixels the papers' PyTorch loaders gave it, bit for bit.

/// An RGB image, rows of interleaved `r g b` bytes (HWC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes.
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// The `w x h` window at column `x`, row `y` (inside the image).
    ///
    /// # Panics
    /// When the window does not fit the image.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Rgb {
        assert!(
            x + w <= self.width && y + h <= self.height,
            "crop outside the image"
        );
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in y..y + h {
            let start = (row * self.width + x) * 3;
            pixels.extend_from_slice(&self.pixels[start..start + w * 3]);
        }
        Rgb {
            width: w,
            height: h,
            pixels,
        }
    }

    /// Mirrored left to right.
    pub fn flip_horizontal(&self) -> Rgb {
        let mut pixels = Vec::with_capacity(self.pixels.len());
        for row in self.pixels.chunks_exact(self.width * 3) {
            for px in row.chunks_exact(3).rev() {
                pixels.extend_from_slice(px);
            }
        }
        Rgb { pixels, ..*self }
    }

    /// Planar `C x H x W` bytes, the layout of the engine's image sets.
    pub fn to_chw(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = vec![0u8; 3 * n];
        for (i, px) in self.pixels.chunks_exact(3).enumerate() {
            out[i] = px[0];
            out[n + i] = px[1];
            out[2 * n + i] = px[2];
        }
        out
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input pixel, how many, and their fixed-point weights.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    ksize: usize,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `0..in_size`.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter's support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero; a negative start is clamped to 0 either way.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            *kx = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *kx;
        }
        for x in 0..xmax {
            let w = if ww == 0.0 { k[x] } else { k[x] / ww };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

fn clip8(v: i32) -> u8 {
    if v >= (1i32 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// `img` resized to `width x height` with Pillow's bilinear filter (a copy when the size is the
/// same, as Pillow returns).
///
/// The pass order is Pillow 13's (python-pillow/Pillow#9549): vertical first when the height
/// shrinks by more than twice as many pixels as the width, else horizontal first. The order
/// changes the 8-bit intermediate, so it changes output bytes; Pillow before 13 always went
/// horizontal first.
///
/// # Panics
/// When a side of `img` or of the output is 0.
pub fn resize_bilinear(img: &Rgb, width: usize, height: usize) -> Rgb {
    assert!(img.width > 0 && img.height > 0 && width > 0 && height > 0);
    let need_h = width != img.width;
    let need_v = height != img.height;
    let vertical_first =
        height < img.height && (img.height - height) as i64 > 2 * (img.width as i64 - width as i64);
    match (need_h, need_v) {
        (false, false) => img.clone(),
        (true, false) => horizontal(img, &coefficients(img.width, width), 0..img.height),
        (false, true) => vertical(img, &coefficients(img.height, height), 0),
        (true, true) if vertical_first => {
            let tall = vertical(img, &coefficients(img.height, height), 0);
            horizontal(&tall, &coefficients(img.width, width), 0..height)
        }
        (true, true) => {
            // Only the rows the vertical pass reads: from the first row it uses to its last.
            let vert = coefficients(img.height, height);
            let first = vert.bounds[0].0;
            let (lo, n) = vert.bounds[height - 1];
            let wide = horizontal(img, &coefficients(img.width, width), first..lo + n);
            vertical(&wide, &vert, first)
        }
    }
}

/// Pillow's `ImagingResampleHorizontal_8bpc` over input rows `rows`. Sums are 32-bit as in
/// Pillow (255 times weights summing to 2^22 fits).
fn horizontal(img: &Rgb, k: &Coefficients, rows: std::ops::Range<usize>) -> Rgb {
    let half = 1i32 << (PRECISION_BITS - 1);
    let width = k.bounds.len();
    let height = rows.len();
    let mut pixels = vec![0u8; height * width * 3];
    let stride = img.width * 3;
    for (out_row, y) in pixels.chunks_exact_mut(width * 3).zip(rows) {
        let row = &img.pixels[y * stride..(y + 1) * stride];
        for ((out, &(xmin, xmax)), w) in out_row
            .chunks_exact_mut(3)
            .zip(&k.bounds)
            .zip(k.weights.chunks_exact(k.ksize))
        {
            let taps = &row[xmin * 3..(xmin + xmax) * 3];
            let (mut r, mut g, mut b) = (half, half, half);
            for (p, &kx) in taps.chunks_exact(3).zip(&w[..xmax]) {
                r += i32::from(p[0]) * kx;
                g += i32::from(p[1]) * kx;
                b += i32::from(p[2]) * kx;
            }
            out[0] = clip8(r);
            out[1] = clip8(g);
            out[2] = clip8(b);
        }
    }
    Rgb {
        width,
        height,
        pixels,
    }
}

/// Pillow's `ImagingResampleVertical_8bpc`; `img`'s row 0 is the input's row `first`. Each
/// output row accumulates whole input rows (contiguous, so the loop vectorizes).
fn vertical(img: &Rgb, k: &Coefficients, first: usize) -> Rgb {
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = img.width * 3;
    let height = k.bounds.len();
    let mut pixels = vec![0u8; height * stride];
    let mut acc = vec![0i32; stride];
    for ((out, &(ymin, ymax)), w) in pixels
        .chunks_exact_mut(stride)
        .zip(&k.bounds)
        .zip(k.weights.chunks_exact(k.ksize))
    {
        acc.fill(half);
        for (y, &ky) in w[..ymax].iter().enumerate() {
            let row = &img.pixels[(y + ymin - first) * stride..(y + ymin - first + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Rgb {
        width: img.width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Rgb {
        Rgb {
            width: w,
            height: h,
            pixels: (0..w * h * 3).map(|i| (i * 7 % 256) as u8).collect(),
        }
    }

    #[test]
    fn same_size_is_a_copy_and_a_constant_image_stays_constant() {
        let img = ramp(5, 4);
        assert_eq!(resize_bilinear(&img, 5, 4), img);
        let flat = Rgb {
            width: 9,
            height: 7,
            pixels: vec![200; 9 * 7 * 3],
        };
        for (w, h) in [(3, 2), (20, 13), (9, 3), (4, 7)] {
            let out = resize_bilinear(&flat, w, h);
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.pixels.iter().all(|&p| p == 200), "{w}x{h}");
        }
    }

    #[test]
    fn crop_flip_and_planar_layout() {
        let img = ramp(4, 3);
        let c = img.crop(1, 1, 2, 2);
        assert_eq!(&c.pixels[..3], &img.pixels[(4 + 1) * 3..(4 + 1) * 3 + 3]);
        let f = img.flip_horizontal();
        assert_eq!(&f.pixels[..3], &img.pixels[9..12]);
        assert_eq!(f.flip_horizontal(), img);
        let chw = img.to_chw();
        assert_eq!(chw[12], img.pixels[1]);
    }
}
