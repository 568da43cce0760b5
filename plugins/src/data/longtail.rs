//! The field's long-tailed (LT) training splits, built from a balanced training set the way
//! CIFAR-10-LT / CIFAR-100-LT are (Cao et al., "Learning Imbalanced Datasets with
//! Label-Distribution-Aware Margin Loss", NeurIPS 2019), plus a balanced split of the same size
//! that serves as the reference for the survey's relative accuracy.
//!
//! Procedure, for classes `i = 0..C-1` in label order:
//! 1. the class's training indices (ascending) are shuffled with ChaCha8 keyed by `split_seed`
//!    on stream `i` (see `shuffle.rs`);
//! 2. the first `val_per_class` go to a balanced validation split, held out of training;
//! 3. the rest is capped at `max_per_class` when given; `available_i` is what remains;
//! 4. `n_max = max_i available_i`, and the target count is
//!    * exp:  `n_i = floor(n_max * (1/ratio)^(i/(C-1)))` (`n_max` when `C == 1`),
//!    * step: the last `floor(step_fraction * C)` classes are minority with
//!      `floor(n_max * (1/ratio))`, the others keep `n_max`;
//! 5. the class keeps the first `min(n_i, available_i)` indices of its shuffled list.
//!
//! All arithmetic is f64 and floors exactly as numpy's `int(n_max * (1/ratio)**(i/(C-1)))`.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::shuffle::{shuffle, stream_rng};

/// The imbalance profile of [`LtConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LtProfile {
    /// Exponential decay from the head to the tail class.
    Exp,
    /// Two levels: majority classes at `n_max`, minority classes at `n_max / ratio`.
    Step,
}

/// How to cut a long-tailed training split out of a balanced training set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtConfig {
    pub profile: LtProfile,
    /// Imbalance ratio `n_max / n_min`, `>= 1` (1 = balanced).
    pub ratio: f64,
    /// Optional cap on each class's available training images before the profile is applied.
    #[serde(default)]
    pub max_per_class: Option<usize>,
    /// Images per class held out (before the cap) into a balanced validation split.
    #[serde(default)]
    pub val_per_class: usize,
    /// Seed of the per-class shuffles.
    #[serde(default)]
    pub split_seed: u64,
    /// Step profile only: fraction `mu` of the classes that are minority (the last ones).
    #[serde(default = "default_step_fraction")]
    pub step_fraction: f64,
}

fn default_step_fraction() -> f64 {
    0.5
}

impl LtConfig {
    /// An exp-profile configuration with no cap and no validation hold-out.
    pub fn exp(ratio: f64, split_seed: u64) -> Self {
        Self {
            profile: LtProfile::Exp,
            ratio,
            max_per_class: None,
            val_per_class: 0,
            split_seed,
            step_fraction: default_step_fraction(),
        }
    }
}

/// Why a long-tailed split could not be built; each message names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LongTailError {
    #[error("ratio must be a finite number >= 1, got {0}")]
    Ratio(f64),
    #[error("step_fraction must be within [0, 1], got {0}")]
    StepFraction(f64),
    #[error("max_per_class must be >= 1, got 0")]
    ZeroCap,
    #[error("the data set must have at least one class")]
    NoClasses,
    #[error("label {label} of training image {index} is not below the number of classes {classes}")]
    Label {
        index: usize,
        label: u32,
        classes: usize,
    },
    #[error(
        "class {class} has {available} training images, but val_per_class = {val_per_class} \
         needs at least {} (one left for training)", val_per_class + 1
    )]
    TooFewImages {
        class: usize,
        available: usize,
        val_per_class: usize,
    },
    #[error(
        "balanced variant needs {needed} images of class {class}, only {available} are available \
         after val_per_class / max_per_class"
    )]
    BalancedShort {
        class: usize,
        needed: usize,
        available: usize,
    },
}

/// A long-tailed (or balanced) training split and its validation hold-out, as indices into the
/// original training set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtSplit {
    /// Selected training indices, class after class, each class in its shuffled order.
    pub train_indices: Vec<usize>,
    /// Validation indices, class after class (`val_per_class` each), in shuffled order.
    pub val_indices: Vec<usize>,
    /// Training images per class (length C).
    pub class_counts: Vec<usize>,
    /// SHA-256 hex of the training indices then the validation indices, each as u64 LE.
    pub hash: String,
}

/// Builds the long-tailed split of `labels` (the balanced training set, `num_classes` classes).
pub fn long_tail_split(
    labels: &[u32],
    num_classes: usize,
    cfg: &LtConfig,
) -> Result<LtSplit, LongTailError> {
    let pools = Pools::new(labels, num_classes, cfg)?;
    let targets = target_counts(cfg, pools.n_max(), num_classes)?;
    Ok(pools.take(&targets))
}

/// A balanced split with as many training images as the long-tailed one of `cfg`: `total / C`
/// per class, the remainder one each to the first classes, drawn from the same shuffled
/// per-class lists (after the same validation hold-out and cap), with the same validation split.
pub fn balanced_variant(
    labels: &[u32],
    num_classes: usize,
    cfg: &LtConfig,
) -> Result<LtSplit, LongTailError> {
    let pools = Pools::new(labels, num_classes, cfg)?;
    let lt_total: usize = target_counts(cfg, pools.n_max(), num_classes)?
        .iter()
        .zip(&pools.available)
        .map(|(&t, a)| t.min(a.len()))
        .sum();
    let (base, extra) = (lt_total / num_classes, lt_total % num_classes);
    let targets: Vec<usize> = (0..num_classes)
        .map(|c| base + usize::from(c < extra))
        .collect();
    for (class, (&needed, pool)) in targets.iter().zip(&pools.available).enumerate() {
        if needed > pool.len() {
            return Err(LongTailError::BalancedShort {
                class,
                needed,
                available: pool.len(),
            });
        }
    }
    Ok(pools.take(&targets))
}

/// The profile's target count per class for a head count of `n_max` (before `min(available)`).
pub fn target_counts(
    cfg: &LtConfig,
    n_max: usize,
    num_classes: usize,
) -> Result<Vec<usize>, LongTailError> {
    validate(cfg, num_classes)?;
    let n = n_max as f64;
    let inv = 1.0 / cfg.ratio;
    Ok(match cfg.profile {
        LtProfile::Exp if num_classes == 1 => vec![n_max],
        LtProfile::Exp => (0..num_classes)
            .map(|i| (n * inv.powf(i as f64 / (num_classes - 1) as f64)).floor() as usize)
            .collect(),
        LtProfile::Step => {
            // The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 at 29 minority classes.
            let minority =
                ((cfg.step_fraction * num_classes as f64 + 1e-9).floor() as usize).min(num_classes);
            let low = (n * inv).floor() as usize;
            (0..num_classes)
                .map(|i| {
                    if i < num_classes - minority {
                        n_max
                    } else {
                        low
                    }
                })
                .collect()
        }
    })
}

fn validate(cfg: &LtConfig, num_classes: usize) -> Result<(), LongTailError> {
    if !(cfg.ratio.is_finite() && cfg.ratio >= 1.0) {
        return Err(LongTailError::Ratio(cfg.ratio));
    }
    if !(0.0..=1.0).contains(&cfg.step_fraction) {
        return Err(LongTailError::StepFraction(cfg.step_fraction));
    }
    if cfg.max_per_class == Some(0) {
        return Err(LongTailError::ZeroCap);
    }
    if num_classes == 0 {
        return Err(LongTailError::NoClasses);
    }
    Ok(())
}

/// Per-class shuffled index lists after the validation hold-out and the cap.
struct Pools {
    val: Vec<Vec<usize>>,
    available: Vec<Vec<usize>>,
}

impl Pools {
    fn new(labels: &[u32], num_classes: usize, cfg: &LtConfig) -> Result<Self, LongTailError> {
        validate(cfg, num_classes)?;
        let mut per_class = vec![Vec::new(); num_classes];
        for (index, &label) in labels.iter().enumerate() {
            per_class
                .get_mut(label as usize)
                .ok_or(LongTailError::Label {
                    index,
                    label,
                    classes: num_classes,
                })?
                .push(index);
        }
        let mut val = Vec::with_capacity(num_classes);
        let mut available = Vec::with_capacity(num_classes);
        for (class, mut list) in per_class.into_iter().enumerate() {
            if list.len() <= cfg.val_per_class {
                return Err(LongTailError::TooFewImages {
                    class,
                    available: list.len(),
                    val_per_class: cfg.val_per_class,
                });
            }
            shuffle(&mut list, &mut stream_rng(cfg.split_seed, class as u64));
            let mut rest = list.split_off(cfg.val_per_class);
            if let Some(cap) = cfg.max_per_class {
                rest.truncate(cap);
            }
            val.push(list);
            available.push(rest);
        }
        Ok(Self { val, available })
    }

    fn n_max(&self) -> usize {
        self.available.iter().map(Vec::len).max().unwrap_or(0)
    }

    fn take(&self, targets: &[usize]) -> LtSplit {
        let mut train_indices = Vec::new();
        let mut class_counts = Vec::with_capacity(targets.len());
        for (pool, &t) in self.available.iter().zip(targets) {
            let k = t.min(pool.len());
            train_indices.extend_from_slice(&pool[..k]);
            class_counts.push(k);
        }
        let val_indices: Vec<usize> = self.val.concat();
        let mut hasher = Sha256::new();
        for &i in train_indices.iter().chain(&val_indices) {
            hasher.update((i as u64).to_le_bytes());
        }
        let hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        LtSplit {
            train_indices,
            val_indices,
            class_counts,
            hash,
        }
    }
}

#[cfg(test)]
#[path = "longtail_tests.rs"]
mod tests;
