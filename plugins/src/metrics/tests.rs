//! Metrics tests against the numpy fixture (bench/fixtures/metrics.py) and hand-made cases.

use super::*;
use serde::Deserialize;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/metrics.json"
));

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    num_classes: usize,
    logits: Vec<f32>,
    labels: Vec<u32>,
    train_counts: Vec<usize>,
    many_above: usize,
    few_below: usize,
    preds: Vec<u32>,
    top1: f64,
    per_class: Vec<Option<f64>>,
    groups: Groups,
    confusion: Vec<u64>,
    calibration: CalibrationCase,
    worst_class: f64,
    /// SADE's eleven shifted test sets' expected top-1 (forward 50..2, uniform, backward 2..50).
    test_agnostic: Vec<f64>,
}

#[derive(Deserialize)]
struct CalibrationCase {
    ece: f64,
    nll: f64,
    bins: Vec<ReliabilityBin>,
}

#[derive(Deserialize)]
struct Groups {
    many: Option<f64>,
    medium: Option<f64>,
    few: Option<f64>,
}

fn close(got: Option<f32>, want: Option<f64>, what: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!(
            (g as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3),
            "{what}: got {g}, want {w}"
        ),
        (None, None) => {}
        _ => panic!("{what}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn test_agnostic_accuracy_matches_sades_shifted_test_sets() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("metrics fixture parses");
    for c in fixture.cases {
        let got = test_agnostic(&c.per_class, &c.train_counts);
        assert_eq!(c.test_agnostic.len(), got.len(), "{}", c.name);
        for ((g, w), d) in got.iter().zip(&c.test_agnostic).zip(TEST_AGNOSTIC) {
            let g = g.unwrap_or_else(|| panic!("{} {}: no accuracy", c.name, d.name()));
            assert!(
                (g - w).abs() <= 1e-8,
                "{} {}: {g} vs SADE's {w}",
                c.name,
                d.name()
            );
        }
    }
}

#[test]
fn calibration_and_the_worst_class_match_numpy() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("metrics fixture parses");
    for c in fixture.cases {
        let got = calibration(&c.logits, &c.labels, c.num_classes, ECE_BINS)
            .unwrap()
            .unwrap();
        let near = |g: f64, w: f64, what: &str| {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{} {what}: {g} vs {w}",
                c.name
            )
        };
        near(got.ece, c.calibration.ece, "ece");
        near(got.nll, c.calibration.nll, "nll");
        assert_eq!(got.bins.len(), c.calibration.bins.len());
        for (i, (g, w)) in got.bins.iter().zip(&c.calibration.bins).enumerate() {
            assert_eq!(g.count, w.count, "{} bin {i}", c.name);
            near(g.accuracy, w.accuracy, "bin accuracy");
            near(g.confidence, w.confidence, "bin confidence");
        }
        assert_eq!(
            got.bins.iter().map(|b| b.count).sum::<usize>(),
            c.labels.len()
        );
        assert_eq!(worst_class(&c.per_class), Some(c.worst_class), "{}", c.name);
    }
    // An empty set has no calibration; a set of one sure, right prediction has none to speak of.
    assert_eq!(calibration(&[], &[], 3, ECE_BINS).unwrap(), None);
    let sure = calibration(&[0.0, 40.0, 0.0], &[1], 3, ECE_BINS)
        .unwrap()
        .unwrap();
    assert!(sure.ece < 1e-12 && sure.nll < 1e-12, "{sure:?}");
    assert_eq!(sure.bins[ECE_BINS - 1].count, 1);
    assert!(calibration(&[1.0, 2.0], &[0], 3, ECE_BINS).is_err());
}

#[test]
fn evaluation_matches_numpy() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("metrics fixture parses");
    assert_eq!(fixture.cases.len(), 3);
    for c in fixture.cases {
        let k = c.num_classes;
        assert_eq!(argmax(&c.logits, k).unwrap(), c.preds, "{} argmax", c.name);
        let thr = ShotThresholds {
            many_above: c.many_above,
            few_below: c.few_below,
        };
        let e = Evaluation::from_logits(&c.logits, &c.labels, k, &c.train_counts, &thr).unwrap();
        assert_eq!(
            e.confusion.counts(),
            &c.confusion[..],
            "{} confusion",
            c.name
        );
        close(e.top1, Some(c.top1), &format!("{} top1", c.name));
        assert_eq!(e.per_class.len(), k);
        for (j, (g, w)) in e.per_class.iter().zip(&c.per_class).enumerate() {
            close(*g, *w, &format!("{} class {j}", c.name));
        }
        close(e.groups.many, c.groups.many, &format!("{} many", c.name));
        close(
            e.groups.medium,
            c.groups.medium,
            &format!("{} medium", c.name),
        );
        close(e.groups.few, c.groups.few, &format!("{} few", c.name));
    }
}

#[test]
fn group_mean_is_over_classes_not_images() {
    // Class 0 (many): 3/4 right; class 1 (many): 0/1 right. Per-class mean 0.375, pooled 0.6.
    let m = ConfusionMatrix::from_predictions(&[0, 0, 0, 1, 0], &[0, 0, 0, 0, 1], 3).unwrap();
    let g = group_accuracy(&m, &[500, 200, 5], &ShotThresholds::default()).unwrap();
    assert_eq!(g.many, Some(0.375));
    assert_eq!(g.medium, None);
    assert_eq!(g.few, None, "class 2 has no test image");
    assert_eq!(m.top1(), Some(0.6));
}

#[test]
fn argmax_ties_and_nan() {
    assert_eq!(
        argmax(&[1.0, 3.0, 3.0, 2.0, 2.0, 0.0], 3).unwrap(),
        vec![1, 0]
    );
    assert_eq!(
        argmax(&[f32::NAN, 1.0, 0.5, f32::NAN, f32::NAN, f32::NAN], 3).unwrap(),
        vec![1, 0]
    );
    assert!(matches!(
        argmax(&[1.0; 5], 3),
        Err(MetricsError::Length { .. })
    ));
    assert_eq!(argmax(&[1.0; 3], 0), Err(MetricsError::NoClasses));
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(
        ConfusionMatrix::from_predictions(&[0, 1], &[0], 2),
        Err(MetricsError::Length { .. })
    ));
    assert_eq!(
        ConfusionMatrix::from_predictions(&[0, 1], &[0, 2], 2),
        Err(MetricsError::ClassOutOfRange {
            what: "label",
            index: 1,
            value: 2,
            num_classes: 2
        })
    );
    let m = ConfusionMatrix::new(2);
    assert_eq!(m.top1(), None);
    assert!(group_accuracy(&m, &[1], &ShotThresholds::default()).is_err());
    let bad = ShotThresholds {
        many_above: 10,
        few_below: 12,
    };
    assert!(group_accuracy(&m, &[1, 2], &bad).is_err());
}

fn epoch(epoch: usize, test: f32, val: Option<f32>) -> Selected {
    Selected {
        epoch,
        test_top1: test,
        val_top1: val,
    }
}

#[test]
fn selection_tracks_best_last_and_validation() {
    let mut s = Selection::new();
    assert_eq!(s.last(), None);
    for (e, t, v) in [
        (0, 0.30, 0.35),
        (1, 0.50, 0.40),
        (2, 0.45, 0.48),
        (3, 0.50, 0.48),
        (4, 0.40, 0.30),
    ] {
        s.update(epoch(e, t, Some(v)));
    }
    assert_eq!(
        s.best_test().map(|b| b.epoch),
        Some(1),
        "earliest of the tied best"
    );
    assert_eq!(s.last().map(|b| (b.epoch, b.test_top1)), Some((4, 0.40)));
    let v = s.val_selected().unwrap();
    assert_eq!(
        (v.epoch, v.test_top1),
        (2, 0.45),
        "test accuracy at the best validation epoch"
    );

    let mut no_val = Selection::new();
    no_val.update(epoch(0, f32::NAN, None));
    no_val.update(epoch(1, 0.2, None));
    assert_eq!(no_val.val_selected(), None);
    assert_eq!(no_val.best_test().map(|b| b.epoch), Some(1));
}

#[test]
fn relative_accuracy_uses_the_larger_reference() {
    // Values exact in binary, so the quotients are exact.
    assert_eq!(relative_accuracy(0.375, 0.25, 0.5), Some(0.75));
    assert_eq!(relative_accuracy(0.375, 0.75, 0.5), Some(0.5));
    assert_eq!(relative_accuracy(0.375, 0.0, 0.0), None);
    assert_eq!(relative_accuracy(0.375, f32::NAN, 0.5), Some(0.75));
}
