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
//!
//! SADE's test-time aggregation (`train/test_time.rs`) needs the shifted sets themselves, whose
//! unlabeled images it adapts the experts' weights on: [`ShiftedTestSets`] draws them from the
//! run's seed with SADE's per-class counts ([`TestDistribution::image_counts`]).

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

    /// Each class's position in this distribution's long tail, `0` for its head: classes ranked
    /// by training count, most frequent first (ties by index, so a data set's own order decides
    /// between equals), the `i`-th at `i` forward and `C - 1 - i` backward; `None` for the
    /// uniform distribution (and fewer than 2 classes).
    fn positions(&self, train_counts: &[usize]) -> Option<Vec<f64>> {
        let classes = train_counts.len();
        if self.shift == Shift::Uniform || classes < 2 {
            return None;
        }
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| train_counts[b].cmp(&train_counts[a]).then(a.cmp(&b)));
        let last = (classes - 1) as f64;
        let mut positions = vec![0.0; classes];
        for (rank, &class) in order.iter().enumerate() {
            positions[class] = match self.shift {
                Shift::Forward => rank as f64,
                _ => last - rank as f64,
            };
        }
        Some(positions)
    }

    /// Each class's weight in this distribution (the largest is 1), from the training set's
    /// class counts: the class at position `p` of [`Self::positions`] weighs `ρ^(-p/(C-1))`.
    pub fn weights(&self, train_counts: &[usize]) -> Vec<f64> {
        let Some(positions) = self.positions(train_counts) else {
            return vec![1.0; train_counts.len()];
        };
        let last = (train_counts.len() - 1) as f64;
        positions
            .iter()
            .map(|p| self.ratio.powf(-p / last))
            .collect()
    }

    /// How many test images of each class SADE's shifted test set keeps: `int(n_max *
    /// (1/ρ)^(p/(C-1)))` for the class at position `p` (`get_img_num_per_cls` of SADE's
    /// `imbalance_cifar.py`, in its float arithmetic), `n_max` the most test images a class has
    /// (a balanced test set's images per class), and never more than the class has.
    pub fn image_counts(&self, train_counts: &[usize], test_counts: &[usize]) -> Vec<usize> {
        let n_max = test_counts.iter().copied().max().unwrap_or(0);
        let kept: Vec<usize> = match self.positions(train_counts) {
            None => vec![n_max; train_counts.len()],
            Some(positions) => {
                let last = (train_counts.len() - 1) as f64;
                let factor = 1.0 / self.ratio;
                positions
                    .iter()
                    .map(|p| (n_max as f64 * factor.powf(p / last)) as usize)
                    .collect()
            }
        };
        kept.iter()
            .zip(test_counts)
            .map(|(&k, &have)| k.min(have))
            .collect()
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

/// SADE's shifted test sets drawn from a test set: each class's test images in a random order
/// drawn from a seed, of which every distribution keeps a prefix of [`TestDistribution::
/// image_counts`] images. One order per class for all eleven sets, as SADE's loader draws them
/// (`np.random.seed(0)` before each set's per-class shuffles: the same permutation each time), so
/// a set keeps every image of a set with fewer images of that class.
#[derive(Debug, Clone)]
pub struct ShiftedTestSets {
    /// Per class, its test-set indices in the drawn order.
    by_class: Vec<Vec<usize>>,
}

/// XORed into the seed of the per-class draws, so they share no numbers with the split's own
/// shuffles of the same seed.
const SHIFTED_SETS_KEY: u64 = 0x5ADE_7E57_0000_0001;

impl ShiftedTestSets {
    /// The per-class orders of a test set's `labels` (`classes` classes; labels outside are
    /// ignored), drawn from `seed`: class `c` from ChaCha8 stream `c` of `seed ^ key`.
    pub fn new(labels: &[u32], classes: usize, seed: u64) -> Self {
        let mut by_class = vec![Vec::new(); classes];
        for (i, &label) in labels.iter().enumerate() {
            if let Some(members) = by_class.get_mut(label as usize) {
                members.push(i);
            }
        }
        for (c, members) in by_class.iter_mut().enumerate() {
            let mut rng = crate::data::shuffle::stream_rng(seed ^ SHIFTED_SETS_KEY, c as u64);
            crate::data::shuffle::shuffle(members, &mut rng);
        }
        Self { by_class }
    }

    /// Test images per class.
    pub fn test_counts(&self) -> Vec<usize> {
        self.by_class.iter().map(Vec::len).collect()
    }

    /// The test-set indices of `dist`'s shifted set, ascending.
    pub fn subset(&self, dist: &TestDistribution, train_counts: &[usize]) -> Vec<usize> {
        let counts = dist.image_counts(train_counts, &self.test_counts());
        let mut kept: Vec<usize> = self
            .by_class
            .iter()
            .zip(counts)
            .flat_map(|(members, k)| members[..k].iter().copied())
            .collect();
        kept.sort_unstable();
        kept
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

    /// SADE's `get_img_num_per_cls(cls_num, 'exp', 1/rho, reverse)` with `img_max` test images
    /// per class (printed by Python 3 for these arguments).
    #[test]
    fn the_shifted_sets_keep_sades_counts_per_class() {
        let cifar10: Vec<usize> = (0..10).map(|i| 5000 / (i + 1)).collect();
        let count = |d: TestDistribution, n: usize| d.image_counts(&cifar10, &[n; 10]);
        assert_eq!(
            count(dist(Shift::Forward, 50.0), 1000),
            [1000, 647, 419, 271, 175, 113, 73, 47, 30, 20]
        );
        assert_eq!(
            count(dist(Shift::Backward, 50.0), 1000),
            [20, 30, 47, 73, 113, 175, 271, 419, 647, 1000]
        );
        assert_eq!(
            count(dist(Shift::Forward, 2.0), 100),
            [100, 92, 85, 79, 73, 68, 62, 58, 54, 50]
        );
        assert_eq!(count(dist(Shift::Uniform, 1.0), 100), [100; 10]);
        // The digits' 35 test images per class: the tail of forward-50 keeps none.
        assert_eq!(
            count(dist(Shift::Forward, 50.0), 35),
            [35, 22, 14, 9, 6, 3, 2, 1, 1, 0]
        );
        // Classes are ranked by training count, not by index; a class has no more than it has.
        let shuffled = [10, 50, 100];
        assert_eq!(
            dist(Shift::Forward, 4.0).image_counts(&shuffled, &[8, 8, 3]),
            [2, 4, 3]
        );
    }

    #[test]
    fn the_shifted_sets_are_drawn_per_seed_nested_and_of_those_counts() {
        // 4 classes of 20 test images each, interleaved; class 0 the training head.
        let labels: Vec<u32> = (0..80).map(|i| (i % 4) as u32).collect();
        let train = [400, 100, 25, 5];
        let sets = ShiftedTestSets::new(&labels, 4, 7);
        assert_eq!(sets.test_counts(), [20; 4]);
        let mut previous: Option<Vec<usize>> = None;
        for d in TEST_AGNOSTIC.iter().take(6).rev() {
            let subset = sets.subset(d, &train);
            let want = d.image_counts(&train, &[20; 4]);
            let mut got = [0usize; 4];
            for &i in &subset {
                got[labels[i] as usize] += 1;
            }
            assert_eq!(got.to_vec(), want, "{}", d.name());
            assert!(
                subset.windows(2).all(|w| w[0] < w[1]),
                "ascending, once each"
            );
            // Forward from uniform to 50: each set keeps a subset of the previous one's images.
            if let Some(p) = &previous {
                assert!(subset.iter().all(|i| p.contains(i)), "{} nested", d.name());
            }
            previous = Some(subset);
        }
        // The very images bench/reference.py's port draws (`shifted_sets`, printed by Python),
        // so both implementations adapt on and score the same sets.
        let forward = dist(Shift::Forward, 10.0);
        assert_eq!(
            sets.subset(&forward, &train),
            [
                0, 1, 4, 8, 9, 12, 16, 17, 20, 22, 24, 25, 28, 32, 33, 36, 38, 39, 40, 41, 44, 45,
                46, 47, 48, 52, 53, 56, 60, 64, 68, 72, 74, 76, 77
            ]
        );
        // The same seed draws the same sets; another seed other ones.
        let again = ShiftedTestSets::new(&labels, 4, 7);
        assert_eq!(
            sets.subset(&forward, &train),
            again.subset(&forward, &train)
        );
        let other = ShiftedTestSets::new(&labels, 4, 8);
        assert_ne!(
            sets.subset(&forward, &train),
            other.subset(&forward, &train)
        );
        assert_eq!(
            sets.subset(&forward, &train).len(),
            other.subset(&forward, &train).len()
        );
    }
}
