//! Test-agnostic evaluation (Zhang et al., "Self-Supervised Aggregation of Diverse Experts for
//! Test-Agnostic Long-Tailed Recognition" (SADE), NeurIPS 2022, Sec. 5): a model trained on a
//! long-tailed set is tested on test sets whose own class distribution is long-tailed too,
//! forward (the training order: the head stays the head) or backward (reversed), at imbalance
//! 50, 25, 10, 5 and 2, and on the uniform one. The newer ensemble papers report one such row
//! per method, because a method tuned for a uniform test set can lose on a forward one.
//!
//! SADE builds each shifted test set by keeping `int(n_max * ρ^(-i/(C-1)))` images of class `i`
//! (the `i`-th most frequent training class; `n_max` the balanced test set's images per class),
//! a random subset of its test images. Its accuracy is then `Σ n_i a_i / Σ n_i` in expectation
//! over the subsets, with `a_i` the class's accuracy on the whole balanced test set. cauda
//! reports that expectation from the per-class accuracies with the untruncated weights
//! `ρ^(-i/(C-1))`: deterministic (no draw's noise on top of the seeds'), for any test set size,
//! and from what every evaluation already stores. The truncation is the only difference from
//! SADE's numbers: under 0.1 points for CIFAR-10's 1,000 test images per class.

/// Which way a shifted test set's classes are ordered against the training set's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// Forward long-tailed: the most frequent training class is the most frequent test class.
    Forward,
    /// The balanced test set.
    Uniform,
    /// Backward long-tailed: the test set's head is the training set's tail.
    Backward,
}

/// One test distribution of the protocol: a shift and its imbalance ratio (1 for uniform).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestDistribution {
    pub shift: Shift,
    pub ratio: f64,
}

const fn dist(shift: Shift, ratio: f64) -> TestDistribution {
    TestDistribution { shift, ratio }
}

/// SADE's eleven test distributions, in its tables' order: forward 50 to 2, uniform, backward
/// 2 to 50.
pub const TEST_AGNOSTIC: [TestDistribution; 11] = [
    dist(Shift::Forward, 50.0),
    dist(Shift::Forward, 25.0),
    dist(Shift::Forward, 10.0),
    dist(Shift::Forward, 5.0),
    dist(Shift::Forward, 2.0),
    dist(Shift::Uniform, 1.0),
    dist(Shift::Backward, 2.0),
    dist(Shift::Backward, 5.0),
    dist(Shift::Backward, 10.0),
    dist(Shift::Backward, 25.0),
    dist(Shift::Backward, 50.0),
];

impl TestDistribution {
    /// The name tables show: `forward-50`, `uniform`, `backward-2`.
    pub fn name(&self) -> String {
        match self.shift {
            Shift::Forward => format!("forward-{}", self.ratio),
            Shift::Uniform => "uniform".into(),
            Shift::Backward => format!("backward-{}", self.ratio),
        }
    }

    /// Each class's weight in this distribution (the largest is 1), from the training set's
    /// class counts: classes ranked by count, most frequent first (ties by index, so a data
    /// set's own order decides between equals), the `i`-th of `C` weighing `ρ^(-i/(C-1))`,
    /// or `ρ^(-(C-1-i)/(C-1))` backward.
    pub fn weights(&self, train_counts: &[usize]) -> Vec<f64> {
        let classes = train_counts.len();
        if self.shift == Shift::Uniform || classes < 2 {
            return vec![1.0; classes];
        }
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| train_counts[b].cmp(&train_counts[a]).then(a.cmp(&b)));
        let last = (classes - 1) as f64;
        let mut weights = vec![0.0; classes];
        for (rank, &class) in order.iter().enumerate() {
            let position = match self.shift {
                Shift::Forward => rank as f64,
                _ => last - rank as f64,
            };
            weights[class] = self.ratio.powf(-position / last);
        }
        weights
    }

    /// The expected top-1 on this distribution's test set: the per-class accuracies weighted by
    /// [`Self::weights`], over the classes that have test images (`None` where no class has, or
    /// when the lengths differ).
    pub fn accuracy(&self, per_class: &[Option<f64>], train_counts: &[usize]) -> Option<f64> {
        if per_class.len() != train_counts.len() {
            return None;
        }
        let (sum, mass) = per_class
            .iter()
            .zip(self.weights(train_counts))
            .filter_map(|(a, w)| a.map(|a| (a * w, w)))
            .fold((0.0, 0.0), |(s, m), (aw, w)| (s + aw, m + w));
        (mass > 0.0).then(|| sum / mass)
    }
}

/// The accuracy on each of [`TEST_AGNOSTIC`]'s distributions, in its order.
pub fn test_agnostic(per_class: &[Option<f64>], train_counts: &[usize]) -> [Option<f64>; 11] {
    TEST_AGNOSTIC.map(|d| d.accuracy(per_class, train_counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_weights_follow_the_training_order_forward_and_reverse_it_backward() {
        // Class 2 is the head, class 0 the tail: ranks 2, 1, 0 -> positions 0, 1, 2.
        let counts = [10, 50, 100];
        let f = dist(Shift::Forward, 4.0).weights(&counts);
        assert!(
            close(f[2], 1.0) && close(f[1], 0.5) && close(f[0], 0.25),
            "{f:?}"
        );
        let b = dist(Shift::Backward, 4.0).weights(&counts);
        assert!(
            close(b[2], 0.25) && close(b[1], 0.5) && close(b[0], 1.0),
            "{b:?}"
        );
        assert_eq!(dist(Shift::Uniform, 1.0).weights(&counts), [1.0; 3]);
    }

    #[test]
    fn accuracy_is_the_weighted_mean_over_classes_with_test_images() {
        let counts = [100, 50, 10];
        let acc = [Some(0.9), Some(0.6), Some(0.2)];
        // Forward ratio 4: weights 1, 0.5, 0.25 -> (0.9 + 0.3 + 0.05) / 1.75.
        let f = dist(Shift::Forward, 4.0).accuracy(&acc, &counts).unwrap();
        assert!(close(f, 1.25 / 1.75), "{f}");
        // Backward: weights 0.25, 0.5, 1 -> (0.225 + 0.3 + 0.2) / 1.75.
        let b = dist(Shift::Backward, 4.0).accuracy(&acc, &counts).unwrap();
        assert!(close(b, 0.725 / 1.75), "{b}");
        let u = dist(Shift::Uniform, 1.0).accuracy(&acc, &counts).unwrap();
        assert!(close(u, 1.7 / 3.0), "{u}");
        // A class without test images drops out and the rest are renormalized.
        let missing = [Some(0.9), None, Some(0.2)];
        let f = dist(Shift::Forward, 4.0)
            .accuracy(&missing, &counts)
            .unwrap();
        assert!(close(f, 0.95 / 1.25), "{f}");
        assert_eq!(
            dist(Shift::Forward, 4.0).accuracy(&[None; 3], &counts),
            None
        );
        assert_eq!(dist(Shift::Forward, 4.0).accuracy(&acc, &counts[..2]), None);
    }

    #[test]
    fn ratio_one_is_uniform_and_the_protocol_is_ordered_as_sade_tables() {
        let counts = [500, 200, 80, 30, 5];
        let acc = [Some(0.95), Some(0.8), Some(0.6), Some(0.3), Some(0.1)];
        let uniform = dist(Shift::Uniform, 1.0).accuracy(&acc, &counts).unwrap();
        for shift in [Shift::Forward, Shift::Backward] {
            let a = dist(shift, 1.0).accuracy(&acc, &counts).unwrap();
            assert!(close(a, uniform));
        }
        let names: Vec<String> = TEST_AGNOSTIC.iter().map(TestDistribution::name).collect();
        assert_eq!(names[0], "forward-50");
        assert_eq!(names[5], "uniform");
        assert_eq!(names[10], "backward-50");
        // A head-heavy model gains as the test set turns forward and loses backward: monotone.
        let all = test_agnostic(&acc, &counts).map(Option::unwrap);
        assert!(all.windows(2).all(|w| w[0] > w[1]), "{all:?}");
    }
}
