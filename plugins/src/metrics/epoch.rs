//! The model-selection variants the survey compares (best test,
//! last epoch, validation-selected) and its relative accuracy.

use serde::{Deserialize, Serialize};

/// The epoch a selection rule picked and its accuracies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Selected {
    pub epoch: usize,
    pub test_top1: f32,
    pub val_top1: Option<f32>,
}

/// Tracks three model-selection rules over the epochs of a run: the best test accuracy (an
/// optimistic upper bound, as many LT papers report), the last epoch, and validation selection
/// (the test accuracy at the epoch of best validation accuracy; the honest one). Ties keep the
/// earliest epoch; NaN accuracies are never selected.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Selection {
    best_test: Option<Selected>,
    last: Option<Selected>,
    val_selected: Option<Selected>,
}

impl Selection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one epoch's metrics.
    pub fn update(&mut self, now: Selected) {
        self.last = Some(now);
        if improves(now.test_top1, self.best_test.map(|s| s.test_top1)) {
            self.best_test = Some(now);
        }
        if let Some(v) = now.val_top1
            && improves(v, self.val_selected.and_then(|s| s.val_top1))
        {
            self.val_selected = Some(now);
        }
    }

    /// The epoch with the highest test top-1.
    pub fn best_test(&self) -> Option<Selected> {
        self.best_test
    }

    /// The most recent epoch.
    pub fn last(&self) -> Option<Selected> {
        self.last
    }

    /// The epoch with the highest validation top-1 (its test top-1 is the reported number);
    /// `None` until an epoch reports a validation accuracy.
    pub fn val_selected(&self) -> Option<Selected> {
        self.val_selected
    }
}

fn improves(value: f32, best: Option<f32>) -> bool {
    !value.is_nan() && best.is_none_or(|b| value > b)
}

/// The survey's relative accuracy (Zhang et al., "Deep Long-Tailed Learning: A Survey", TPAMI
/// 2023): `A_r = A_t / max(A_v, A_b)`, where `A_t` is the method's top-1, `A_v` the vanilla
/// (cross-entropy) baseline's top-1 and `A_b` the empirical upper reference (the same backbone
/// trained on the balanced data). `None` when the denominator is not a positive number.
pub fn relative_accuracy(method: f32, vanilla: f32, balanced: f32) -> Option<f32> {
    let denom = vanilla.max(balanced);
    (denom > 0.0 && denom.is_finite() && method.is_finite()).then(|| method / denom)
}
