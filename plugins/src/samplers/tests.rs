//! Sampler tests: probabilities against the numpy fixture (bench/fixtures/samplers.py), empirical
//! class frequencies of drawn epochs against those probabilities, determinism and permutations.

use super::*;
use serde::Deserialize;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/samplers.json"
));

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    counts: Vec<usize>,
    instance: Vec<f64>,
    class: Vec<f64>,
    sqrt: Vec<f64>,
    /// BBN's reversed sampler, as its `get_weight` computes it.
    reversed: Vec<f64>,
    total_epochs: usize,
    progressive: Vec<ProgressiveCase>,
}

#[derive(Deserialize)]
struct ProgressiveCase {
    epoch: usize,
    probs: Vec<f64>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("samplers fixture parses")
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 + 1e-9 * w.abs(),
            "{what}[{j}]: got {g}, want {w}"
        );
    }
}

/// Labels `[0; counts[0]] ++ [1; counts[1]] ++ ...`, interleaved so class order is not index order.
fn labels_from_counts(counts: &[usize]) -> Vec<u32> {
    let mut labels: Vec<u32> = counts
        .iter()
        .enumerate()
        .flat_map(|(j, &n)| std::iter::repeat_n(j as u32, n))
        .collect();
    labels.reverse();
    labels
}

#[test]
fn probabilities_match_numpy() {
    for case in fixture().cases {
        let (c, t) = (&case.counts, case.total_epochs);
        assert_close(
            &InstanceBalanced.class_probabilities(c, 3, t),
            &case.instance,
            &case.name,
        );
        assert_close(
            &ClassBalanced.class_probabilities(c, 3, t),
            &case.class,
            &case.name,
        );
        assert_close(
            &SquareRoot.class_probabilities(c, 3, t),
            &case.sqrt,
            &case.name,
        );
        assert_close(
            &Reversed.class_probabilities(c, 3, t),
            &case.reversed,
            &format!("{} reversed", case.name),
        );
        for p in &case.progressive {
            let got = ProgressivelyBalanced.class_probabilities(c, p.epoch, t);
            assert_close(
                &got,
                &p.probs,
                &format!("{} PB epoch {}", case.name, p.epoch),
            );
        }
    }
}

#[test]
fn empty_counts_give_zero_probabilities() {
    assert_eq!(power_probabilities(&[0, 0], 0.5), vec![0.0, 0.0]);
    assert_eq!(progressive_probabilities(&[4, 0], 0, 0), vec![1.0, 0.0]);
    assert_eq!(reversed_probabilities(&[0, 0]), vec![0.0, 0.0]);
    // The rarest class is the likeliest: w = [1, 4] for counts [8, 2].
    assert_eq!(reversed_probabilities(&[8, 0, 2]), vec![0.2, 0.0, 0.8]);
}

/// Every class's frequency over `labels.len()` draws lies within 5 binomial sigmas of `n p_j`.
fn assert_frequencies(sampler: &dyn Sampler, labels: &[u32], k: usize, epoch: usize, total: usize) {
    let counts = class_counts(labels, k);
    let probs = sampler.class_probabilities(&counts, epoch, total);
    let epoch_idx = sampler.epoch_indices(labels, k, epoch, total, 42);
    let n = labels.len() as f64;
    assert_eq!(epoch_idx.len(), labels.len());
    let drawn = class_counts(&epoch_idx.iter().map(|&i| labels[i]).collect::<Vec<_>>(), k);
    for j in 0..k {
        let expected = n * probs[j];
        let sigma = (n * probs[j] * (1.0 - probs[j])).sqrt();
        let got = drawn[j] as f64;
        assert!(
            (got - expected).abs() <= 5.0 * sigma + 1e-9,
            "{sampler:?} class {j}: drew {got}, expected {expected} +- 5*{sigma}"
        );
    }
}

#[test]
fn empirical_class_frequencies_follow_probabilities() {
    // CIFAR-10-LT (imbalance 100) profile scaled to ~200k images, so each epoch is ~200k draws.
    let counts: Vec<usize> = fixture().cases[0].counts.iter().map(|n| n * 16).collect();
    let labels = labels_from_counts(&counts);
    assert!(labels.len() > 190_000);
    assert_frequencies(&ClassBalanced, &labels, 10, 0, 1);
    assert_frequencies(&SquareRoot, &labels, 10, 0, 1);
    assert_frequencies(&ProgressivelyBalanced, &labels, 10, 0, 200);
    assert_frequencies(&ProgressivelyBalanced, &labels, 10, 120, 200);
    assert_frequencies(&InstanceBalanced, &labels, 10, 0, 1);
    assert_frequencies(&Reversed, &labels, 10, 0, 1);
}

#[test]
fn images_within_a_class_are_uniform() {
    // Class 0 has 3 images, class 1 one: class-balanced gives image 3 p=1/2, the others 1/6 each.
    let labels = vec![0u32, 0, 0, 1];
    let mut tally = [0usize; 4];
    for epoch in 0..25_000 {
        for i in ClassBalanced.epoch_indices(&labels, 2, epoch, 1, 7) {
            tally[i] += 1;
        }
    }
    let n = 100_000.0f64;
    for (i, p) in [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 0.5]
        .into_iter()
        .enumerate()
    {
        let sigma = (n * p * (1.0 - p)).sqrt();
        assert!(
            (tally[i] as f64 - n * p).abs() <= 5.0 * sigma,
            "image {i}: {}",
            tally[i]
        );
    }
}

#[test]
fn epochs_are_deterministic_per_seed_and_epoch() {
    let labels = labels_from_counts(&[500, 120, 30, 4]);
    let samplers: [&dyn Sampler; 5] = [
        &InstanceBalanced,
        &ClassBalanced,
        &SquareRoot,
        &ProgressivelyBalanced,
        &Reversed,
    ];
    for s in samplers {
        let a = s.epoch_indices(&labels, 4, 3, 10, 9);
        assert_eq!(a, s.epoch_indices(&labels, 4, 3, 10, 9), "{s:?} replay");
        assert_ne!(a, s.epoch_indices(&labels, 4, 4, 10, 9), "{s:?} next epoch");
        assert_ne!(
            a,
            s.epoch_indices(&labels, 4, 3, 10, 10),
            "{s:?} other seed"
        );
        assert!(a.iter().all(|&i| i < labels.len()));
    }
}

#[test]
fn instance_epoch_is_a_permutation() {
    let labels = labels_from_counts(&[300, 50, 7]);
    let mut idx = InstanceBalanced.epoch_indices(&labels, 3, 5, 10, 1);
    assert_ne!(idx, (0..labels.len()).collect::<Vec<_>>(), "shuffled");
    idx.sort_unstable();
    assert_eq!(idx, (0..labels.len()).collect::<Vec<_>>());
}

#[test]
fn empty_classes_and_bad_labels_are_never_drawn() {
    // Label 9 is out of range for 3 classes; class 1 is empty.
    let labels = vec![0u32, 2, 9, 0, 2, 2];
    for s in [
        &ClassBalanced as &dyn Sampler,
        &SquareRoot,
        &ProgressivelyBalanced,
        &Reversed,
    ] {
        let idx = s.epoch_indices(&labels, 3, 1, 2, 3);
        assert_eq!(idx.len(), labels.len());
        assert!(
            idx.iter().all(|&i| labels[i] == 0 || labels[i] == 2),
            "{s:?}: {idx:?}"
        );
    }
    assert_eq!(
        check_labels(&labels, 3),
        Err(SamplerError::LabelOutOfRange {
            index: 2,
            label: 9,
            num_classes: 3
        })
    );
    assert_eq!(check_labels(&labels, 10), Ok(()));
    assert!(ClassBalanced.epoch_indices(&[], 3, 0, 1, 0).is_empty());
    assert!(ClassBalanced.epoch_indices(&[5, 6], 3, 0, 1, 0).is_empty());
}

#[test]
fn an_epoch_of_60k_is_fast() {
    let counts: Vec<usize> = (0..100).map(|j| 1 + 1200 / (j + 1)).collect();
    let mut labels = labels_from_counts(&counts);
    labels.resize(60_000, 0);
    let start = std::time::Instant::now();
    let idx = ClassBalanced.epoch_indices(&labels, 100, 0, 1, 0);
    let elapsed = start.elapsed();
    assert_eq!(idx.len(), 60_000);
    // The target is a few ms; the bound is loose because tests share a small machine.
    assert!(elapsed.as_millis() < 100, "60k draws took {elapsed:?}");
}
