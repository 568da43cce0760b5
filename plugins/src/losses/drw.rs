//! Deferred re-weighting: train with the plain loss first so features are learned from the natural
//! distribution, then switch on class-balanced weights to fix the classifier.

use std::sync::Arc;

use burn::tensor::{Int, Tensor};

use super::class_stats::{check_beta, effective_number_weights, validate_counts};
use super::error::{LossError, Result};
use super::{Loss, Step};

/// Deferred Re-Weighting (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
/// Margin Loss", NeurIPS 2019, Alg. 1; reference code kaidic/LDAM-DRW, `--train_rule DRW`):
///
/// `w_c(epoch) = w^{base}_c(epoch)` for `epoch < start_epoch` (all 1 for an unweighted base), and
/// `w_c = (1 - beta) / (1 - beta^{n_c})` scaled to `sum_c w_c = C` from `start_epoch` on (the reference
/// schedule is beta = 0 then 0.9999, switching at epoch 160 of 200). The per-sample loss is the base's.
///
/// Note: kaidic's focal puts the weight inside the exponent (`p = exp(-w CE)`); here the weight
/// multiplies the unweighted focal loss in [`super::combine`], like every other weighted loss.
#[derive(Debug)]
pub struct Drw {
    base: Arc<dyn Loss>,
    start_epoch: usize,
    weights: Vec<f32>,
}

impl Drw {
    /// The reference schedule's switch epoch (of 200).
    pub const DEFAULT_START_EPOCH: usize = 160;
    /// The reference code's beta after the switch.
    pub const DEFAULT_BETA: f64 = 0.9999;

    /// Wraps `base`; weights come from the per-class training counts (all > 0) and `0 <= beta < 1`.
    /// Errors if `base` was built for a different number of classes.
    pub fn new(
        base: Arc<dyn Loss>,
        counts: &[usize],
        start_epoch: usize,
        beta: f64,
    ) -> Result<Self> {
        const NAME: &str = "drw";
        let counts = validate_counts(NAME, counts)?;
        let beta = check_beta(NAME, beta)?;
        if let Some(k) = base.num_classes().filter(|&k| k != counts.len()) {
            return Err(LossError::ClassMismatch {
                what: "drw base loss",
                expected: counts.len(),
                got: k,
            });
        }
        Ok(Self {
            base,
            start_epoch,
            weights: effective_number_weights(&counts, beta),
        })
    }

    /// The first epoch (0-based) with re-weighting on.
    pub fn start_epoch(&self) -> usize {
        self.start_epoch
    }
}

impl Loss for Drw {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        self.base.per_sample(logits, labels)
    }

    fn per_sample_drawn(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        draws: super::StepDraws,
        term: usize,
    ) -> Tensor<1> {
        self.base.per_sample_drawn(logits, labels, draws, term)
    }

    fn class_weights(&self, epoch: usize) -> Option<Vec<f32>> {
        if epoch >= self.start_epoch {
            Some(self.weights.clone())
        } else {
            self.base.class_weights(epoch)
        }
    }

    fn wants_cosine_head(&self) -> bool {
        self.base.wants_cosine_head()
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.weights.len())
    }

    /// DRW re-weights per-sample terms in [`super::combine`]; a base that computes its whole
    /// batch itself (LADE, RIDE, SADE, BCL, influence-balanced after its switch) has no such
    /// terms to weigh, and passing its value on would drop the re-weighting without a word.
    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        self.base.whole_batch(step).map(|_| {
            Err(LossError::Unsupported {
                loss: "drw",
                message: "re-weights per-sample losses, and this run's loss computes its whole \
                          batch itself (its class weighting is its own): remove \
                          `rebalance.loss_schedule = \"drw\"`",
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{Lade, step_loss};
    use burn::tensor::{Device, TensorData};

    #[test]
    fn a_whole_batch_base_is_refused_not_silently_unweighted() {
        let device = Device::default();
        let counts = [50, 20, 5];
        let lade: Arc<dyn Loss> = Arc::new(Lade::new(&counts, 0.1, 0.1).unwrap());
        let drw = Drw::new(lade, &counts, 1, 0.9999).unwrap();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, -0.2, 0.1, 0.3, 0.9, -1.0], [2, 3]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let err = step_loss(&drw, Step::plain(logits, labels, 0, 0)).unwrap_err();
        assert!(
            err.to_string().starts_with("drw: re-weights per-sample"),
            "{err}"
        );
    }
}
