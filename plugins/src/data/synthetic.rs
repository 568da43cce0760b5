//! A seeded synthetic image data set for fast tests: every class has its own mean image (a
//! random prototype), and each sample is that prototype plus Gaussian pixel noise, so a small
//! model can learn the classes in a few steps while the data stays reproducible from one seed.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

use super::shuffle::stream_rng;
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

/// Shape and size of a synthetic data set.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    pub num_classes: usize,
    pub per_class_train: usize,
    pub per_class_test: usize,
    #[serde(default = "default_channels")]
    pub channels: usize,
    #[serde(default = "default_side")]
    pub height: usize,
    #[serde(default = "default_side")]
    pub width: usize,
    #[serde(default)]
    pub seed: u64,
    /// Standard deviation of the per-pixel Gaussian noise, in 0..255 pixel units.
    #[serde(default = "default_noise")]
    pub noise: f64,
}

fn default_channels() -> usize {
    1
}
fn default_side() -> usize {
    8
}
fn default_noise() -> f64 {
    32.0
}

impl SyntheticConfig {
    /// A 1x8x8 set with the default noise.
    pub fn new(
        num_classes: usize,
        per_class_train: usize,
        per_class_test: usize,
        seed: u64,
    ) -> Self {
        Self {
            num_classes,
            per_class_train,
            per_class_test,
            channels: default_channels(),
            height: default_side(),
            width: default_side(),
            seed,
            noise: default_noise(),
        }
    }
}

/// Largest synthetic set accepted (pixel bytes over both splits).
const MAX_BYTES: usize = 1 << 31;

/// Generates the set. Prototypes come from stream 0 of ChaCha8 keyed by `seed`, train noise
/// from stream 1, test noise from stream 2; samples are interleaved (label = index mod C).
pub fn generate(cfg: &SyntheticConfig) -> Result<TrainTest> {
    // Checked: the sizes come from a spec, and their product may overflow.
    let pixels = cfg
        .channels
        .checked_mul(cfg.height)
        .and_then(|p| p.checked_mul(cfg.width));
    let per_class = cfg.per_class_train.checked_add(cfg.per_class_test);
    let total = per_class
        .and_then(|p| p.checked_mul(cfg.num_classes))
        .and_then(|n| n.checked_mul(pixels?));
    let pixels = pixels.unwrap_or(0);
    if cfg.num_classes == 0 || pixels == 0 || total.is_none_or(|t| t > MAX_BYTES) {
        return Err(DataError::Invalid(format!(
            "synthetic: num_classes ({}) and channels x height x width ({}x{}x{}) must be non-zero \
             and the set at most {MAX_BYTES} bytes",
            cfg.num_classes, cfg.channels, cfg.height, cfg.width
        )));
    }
    let bad_noise = || {
        DataError::Invalid(format!(
            "synthetic: noise must be finite and >= 0, got {}",
            cfg.noise
        ))
    };
    if !(cfg.noise.is_finite() && cfg.noise >= 0.0) {
        return Err(bad_noise());
    }
    let noise = Normal::new(0.0, cfg.noise).map_err(|_| bad_noise())?;
    let mut rng = stream_rng(cfg.seed, 0);
    let prototypes: Vec<Vec<f64>> = (0..cfg.num_classes)
        .map(|_| (0..pixels).map(|_| rng.random_range(0.0..=255.0)).collect())
        .collect();
    let make = |per_class: usize, stream: u64| {
        let mut rng = stream_rng(cfg.seed, stream);
        let n = per_class * cfg.num_classes;
        let mut set = ImageSet {
            pixels: Vec::with_capacity(n * pixels),
            labels: Vec::with_capacity(n),
            channels: cfg.channels,
            height: cfg.height,
            width: cfg.width,
            class_names: numbered_classes(cfg.num_classes),
        };
        for i in 0..n {
            let class = i % cfg.num_classes;
            set.labels.push(class as u32);
            for &m in &prototypes[class] {
                let v: f64 = m + noise.sample(&mut rng);
                set.pixels.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
        set
    };
    Ok(TrainTest {
        train: make(cfg.per_class_train, 1),
        test: make(cfg.per_class_test, 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_counts_and_determinism() {
        let cfg = SyntheticConfig {
            channels: 3,
            height: 4,
            width: 5,
            ..SyntheticConfig::new(4, 6, 2, 9)
        };
        let tt = generate(&cfg).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (24, 8));
        assert_eq!(tt.train.class_counts(), vec![6; 4]);
        assert_eq!(tt.test.class_counts(), vec![2; 4]);
        assert_eq!(tt.train.pixels.len(), 24 * 60);
        tt.train.validate().unwrap();
        assert_eq!(generate(&cfg).unwrap(), tt);
        assert_ne!(generate(&SyntheticConfig { seed: 10, ..cfg }).unwrap(), tt);
    }

    /// Nearest class mean (estimated on train) classifies the test set: the classes are learnable.
    #[test]
    fn classes_are_separable_by_nearest_mean() {
        let tt = generate(&SyntheticConfig::new(5, 20, 10, 3)).unwrap();
        let d = tt.train.image_len();
        let mut means = vec![vec![0.0f64; d]; 5];
        for i in 0..tt.train.len() {
            let m = &mut means[tt.train.labels[i] as usize];
            for (a, &p) in m.iter_mut().zip(tt.train.image(i)) {
                *a += f64::from(p) / 20.0;
            }
        }
        let correct = (0..tt.test.len())
            .filter(|&i| {
                let dist = |m: &Vec<f64>| -> f64 {
                    m.iter()
                        .zip(tt.test.image(i))
                        .map(|(a, &p)| (a - f64::from(p)).powi(2))
                        .sum()
                };
                let best = (0..5)
                    .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                    .unwrap();
                best == tt.test.labels[i] as usize
            })
            .count();
        assert_eq!(correct, tt.test.len());
    }

    #[test]
    fn rejects_empty_and_bad_noise() {
        assert!(generate(&SyntheticConfig::new(0, 1, 1, 0)).is_err());
        let err = generate(&SyntheticConfig {
            noise: -1.0,
            ..SyntheticConfig::new(2, 1, 1, 0)
        });
        assert!(err.unwrap_err().to_string().contains("noise"));
    }

    /// Regression: channels x height x width from a spec overflowed (a panic in the worker).
    #[test]
    fn huge_geometry_is_an_error_not_an_overflow() {
        let err = generate(&SyntheticConfig {
            channels: usize::MAX / 2,
            height: 4,
            width: 4,
            ..SyntheticConfig::new(2, 1, 1, 0)
        })
        .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
