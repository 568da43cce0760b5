//! The field's long-tailed (LT) training splits, built from a balanced training set the way
//! CIFAR-10-LT / CIFAR-100-LT are (Cao et al., "Learning Imbalanced Datasets with
//! Label-Distribution-Aware Margin Loss", NeurIPS 2019), plus a balanced split of the same size
//! that serves as the reference for the survey's relative accuracy.
//!
//! Procedure, for classes `i = 0..C-1` in label order:
//! 1. the class's training indices (ascending) are shuffled with ChaCha8 keyed by `split_seed`
//!    on stream `i` (see `shuffle.rs`);
//! 2. the shuffled list is capped at `max_per_class` when given; `available_i` is its length;
//! 3. `n_max = max_i available_i`, and the target count is
//!    * exp:  `n_i = floor(n_max * (1/ratio)^(i/(C-1)))` (`n_max` when `C == 1`),
//!    * step: the last `floor(step_fraction * C)` classes are minority with
//!      `floor(n_max * (1/ratio))`, the others keep `n_max`;
//! 4. the class selects the first `min(n_i, available_i)` indices of its shuffled list;
//! 5. the balanced validation hold-out takes `val_per_class` of the class's images that were
//!    not selected, in shuffled order, so the profile keeps the protocol's counts; a class with
//!    fewer unselected images (the head class, which selects all of them) gives the shortfall
//!    from the end of its selection, so only that class trains on fewer images.
//!
//! A split file (`split_file.rs`) replaces steps 2-4 with its own per-class selection; step 5
//! is the same.
//!
//! All arithmetic is f64 and floors exactly as numpy's `int(n_max * (1/ratio)**(i/(C-1)))`.

use serde::Deserialize;

use super::selection::{assemble, balanced_from, hold_out};
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
    /// Images per class held out into a balanced validation split, from the images the
    /// profile did not select where the class has enough of them.
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
    validate(cfg, num_classes)?;
    let shuffled = shuffled_classes(labels, num_classes, cfg.split_seed)?;
    let selected = profile_selection(&shuffled, cfg)?;
    let (train, val) = hold_out(&shuffled, selected, cfg.val_per_class)?;
    Ok(assemble((train, val)))
}

/// A balanced split with as many training images as the long-tailed one of `cfg`: `total / C`
/// per class, the remainder one each to the first classes, drawn from the same shuffled
/// per-class lists (within the same cap, without the long-tailed split's validation images),
/// with the same validation split.
pub fn balanced_variant(
    labels: &[u32],
    num_classes: usize,
    cfg: &LtConfig,
) -> Result<LtSplit, LongTailError> {
    validate(cfg, num_classes)?;
    let shuffled = shuffled_classes(labels, num_classes, cfg.split_seed)?;
    let selected = profile_selection(&shuffled, cfg)?;
    let (train, val) = hold_out(&shuffled, selected, cfg.val_per_class)?;
    let capped: Vec<&[usize]> = shuffled
        .iter()
        .map(|s| &s[..cfg.max_per_class.map_or(s.len(), |cap| cap.min(s.len()))])
        .collect();
    Ok(assemble(balanced_from(&capped, &train, val)?))
}

/// Each class's training indices, in label order, shuffled with ChaCha8 keyed by `seed` on the
/// class's stream.
pub(crate) fn shuffled_classes(
    labels: &[u32],
    num_classes: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, LongTailError> {
    if num_classes == 0 {
        return Err(LongTailError::NoClasses);
    }
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
    for (class, list) in per_class.iter_mut().enumerate() {
        shuffle(list, &mut stream_rng(seed, class as u64));
    }
    Ok(per_class)
}

/// Steps 2-4: the first `min(n_i, available_i)` of each capped shuffled list.
fn profile_selection(
    shuffled: &[Vec<usize>],
    cfg: &LtConfig,
) -> Result<Vec<Vec<usize>>, LongTailError> {
    let available: Vec<usize> = shuffled
        .iter()
        .map(|s| cfg.max_per_class.map_or(s.len(), |cap| cap.min(s.len())))
        .collect();
    let n_max = available.iter().copied().max().unwrap_or(0);
    let targets = target_counts(cfg, n_max, shuffled.len())?;
    Ok(shuffled
        .iter()
        .zip(available.iter().zip(&targets))
        .map(|(s, (&a, &t))| s[..t.min(a)].to_vec())
        .collect())
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

#[cfg(test)]
#[path = "longtail_tests.rs"]
mod tests;
