//! Many/medium/few-shot accuracy, the standard long-tailed breakdown of Liu et al. (OLTR, CVPR
//! 2019) used by Kang et al. (ICLR 2020) and the survey: classes are grouped by their number of
//! training images and each group reports the mean of its classes' accuracies.

use serde::{Deserialize, Serialize};

use super::{ConfusionMatrix, MetricsError, Result};

/// Group boundaries on the training count `n` of a class: many-shot if `n > many_above`,
/// few-shot if `n < few_below`, medium-shot otherwise (defaults 100 and 20, so medium is
/// `20..=100`, as in OLTR's `shot_acc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShotThresholds {
    pub many_above: usize,
    pub few_below: usize,
}

impl Default for ShotThresholds {
    fn default() -> Self {
        Self {
            many_above: 100,
            few_below: 20,
        }
    }
}

impl ShotThresholds {
    /// Rejects `few_below > many_above + 1`, which would put a class in two groups.
    pub fn validate(&self) -> Result<()> {
        if self.few_below > self.many_above.saturating_add(1) {
            return Err(MetricsError::Thresholds {
                many_above: self.many_above,
                few_below: self.few_below,
            });
        }
        Ok(())
    }
}

/// Mean per-class accuracy of each group; `None` when a group has no class with test images.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupAccuracy {
    pub many: Option<f32>,
    pub medium: Option<f32>,
    pub few: Option<f32>,
}

/// Group accuracy as in OLTR's `shot_acc` (Liu et al. 2019; also Kang et al. 2020's code): for
/// each class present in the test set, its accuracy `correct_j / support_j`; each group reports
/// the unweighted mean over its classes (not pooled over images). Classes absent from the test
/// set are skipped, and an empty group is `None` (the reference code reports 0 there).
pub fn group_accuracy(
    confusion: &ConfusionMatrix,
    train_counts: &[usize],
    thresholds: &ShotThresholds,
) -> Result<GroupAccuracy> {
    if train_counts.len() != confusion.num_classes() {
        return Err(MetricsError::Length {
            what: "train_counts (one per class)",
            expected: confusion.num_classes(),
            got: train_counts.len(),
        });
    }
    group_accuracy_of(&confusion.per_class_f64(), train_counts, thresholds)
}

/// [`group_accuracy`] from per-class accuracies already computed (`None` for a class without
/// test images): what a program run as a command reports (docs/COMMAND_RUNS.md).
pub fn group_accuracy_of(
    per_class: &[Option<f64>],
    train_counts: &[usize],
    thresholds: &ShotThresholds,
) -> Result<GroupAccuracy> {
    thresholds.validate()?;
    if train_counts.len() != per_class.len() {
        return Err(MetricsError::Length {
            what: "train_counts (one per class)",
            expected: per_class.len(),
            got: train_counts.len(),
        });
    }
    let mut sums = [(0.0f64, 0usize); 3];
    for (&acc, &n) in per_class.iter().zip(train_counts) {
        let Some(acc) = acc else { continue };
        let g = if n > thresholds.many_above {
            0
        } else if n < thresholds.few_below {
            2
        } else {
            1
        };
        sums[g].0 += acc;
        sums[g].1 += 1;
    }
    let mean = |(s, c): (f64, usize)| (c > 0).then(|| (s / c as f64) as f32);
    Ok(GroupAccuracy {
        many: mean(sums[0]),
        medium: mean(sums[1]),
        few: mean(sums[2]),
    })
}
