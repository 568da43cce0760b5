//! Tests of turning runs into plot data: filtering, grouping by ratio and method, averaging
//! over seeds, sorting head first, skipping classes without test images, and summing confusion
//! matrices over seeds.

use super::*;
use cauda_proto::v1::{ConfusionMatrix, EvalMetrics, ReliabilityBin, RunSummary};

/// Per-class accuracies; `None` for a class without test images.
fn run(id: u64, method: &str, ratio: f64, seed: u64, per_class: &[Option<f32>]) -> Run {
    Run {
        run_id: id,
        state: RunState::Succeeded as i32,
        method: method.into(),
        imbalance_ratio: Some(ratio),
        seed,
        summary: Some(RunSummary {
            method: method.into(),
            class_counts: vec![10, 100, 1],
            last: Some(EvalMetrics {
                test_top1: 0.5,
                per_class: cauda_proto::per_class_to_wire(per_class),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn seeds_average_and_classes_sort_head_first() {
    let runs = vec![
        run(1, "ce", 10.0, 1, &[Some(0.5), Some(0.9), Some(0.1)]),
        run(2, "ce", 10.0, 2, &[Some(0.7), Some(1.0), None]),
    ];
    let data = per_class("e-1 x", &runs).unwrap();
    assert_eq!(data.x_axis, XAxis::ClassCountDescending);
    assert_eq!(data.panels.len(), 1);
    let s = &data.panels[0].series[0];
    assert_eq!((s.method.as_str(), s.runs), ("ce", 2));
    let expect = [(100.0, 0.95), (10.0, 0.6), (1.0, 0.1)];
    assert_eq!(s.points.len(), 3);
    for (got, want) in s.points.iter().zip(expect) {
        assert!((got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-6);
    }
}

#[test]
fn a_class_no_run_measured_is_left_out() {
    let runs = vec![run(1, "ce", 10.0, 1, &[Some(0.5), None, Some(0.1)])];
    let data = per_class("e", &runs).unwrap();
    let xs: Vec<f64> = data.panels[0].series[0]
        .points
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(xs, vec![10.0, 1.0]);
}

#[test]
fn ratios_become_panels_and_methods_keep_grid_order() {
    let runs = vec![
        run(1, "focal", 100.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]),
        run(2, "ce", 100.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]),
        run(3, "focal", 10.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]),
        run(4, "focal", 100.0, 2, &[Some(0.1), Some(0.2), Some(0.3)]),
    ];
    let data = per_class("e", &runs).unwrap();
    let titles: Vec<&str> = data.panels.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["imbalance ratio 10", "imbalance ratio 100"]);
    let methods: Vec<(&str, usize)> = data.panels[1]
        .series
        .iter()
        .map(|s| (s.method.as_str(), s.runs))
        .collect();
    assert_eq!(methods, [("focal", 2), ("ce", 1)]);
}

#[test]
fn unfinished_and_balanced_reference_runs_are_skipped() {
    let mut failed = run(1, "ce", 10.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]);
    failed.state = RunState::Failed as i32;
    let mut reference = run(2, "focal", 10.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]);
    reference.balanced_reference = true;
    assert!(run_facts(&reference).is_none());
    let kept = run(3, "lws", 10.0, 1, &[Some(0.1), Some(0.2), Some(0.3)]);
    let data = per_class("e", &[failed.clone(), reference.clone(), kept]).unwrap();
    let methods: Vec<&str> = data.panels[0]
        .series
        .iter()
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(methods, ["lws"]);
    assert!(matches!(
        per_class("e", &[failed, reference]),
        Err(PlotError::Empty(_))
    ));
}

fn epoch(n: u32, top1: Option<f32>) -> EpochMetrics {
    EpochMetrics {
        stage: 1,
        epoch: n,
        eval: top1.map(|t| EvalMetrics {
            test_top1: t,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn curves_average_the_seeds_that_evaluated_each_epoch() {
    let runs = vec![
        (
            run(1, "ce", 10.0, 1, &[]),
            vec![epoch(1, Some(0.2)), epoch(2, None), epoch(3, Some(0.6))],
        ),
        (
            run(2, "ce", 10.0, 2, &[]),
            vec![
                epoch(1, Some(0.4)),
                epoch(2, Some(0.5)),
                epoch(3, Some(f32::NAN)),
            ],
        ),
    ];
    let data = curves("e", &runs).unwrap();
    assert_eq!(data.x_axis, XAxis::Epoch);
    let points = &data.panels[0].series[0].points;
    let want = [(1.0, 0.3), (2.0, 0.5), (3.0, 0.6)];
    assert_eq!(points.len(), 3);
    for (got, want) in points.iter().zip(want) {
        assert!((got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-6);
    }
}

#[test]
fn reliability_bins_pool_over_seeds_weighted_by_their_counts() {
    let with_bins = |id: u64, seed: u64, bins: &[(u64, f64, f64)]| {
        let mut r = run(id, "ce", 10.0, seed, &[Some(0.5), Some(0.5), Some(0.5)]);
        let last = r.summary.as_mut().unwrap().last.as_mut().unwrap();
        last.reliability = bins
            .iter()
            .map(|&(count, accuracy, confidence)| ReliabilityBin {
                count,
                accuracy,
                confidence,
            })
            .collect();
        r
    };
    let runs = vec![
        with_bins(1, 1, &[(0, 0.0, 0.0), (3, 1.0, 0.6), (1, 0.0, 0.9)]),
        with_bins(2, 2, &[(2, 0.5, 0.2), (1, 0.0, 0.5), (0, 0.0, 0.0)]),
        // A run without bins (a command run) is left out.
        run(3, "ce", 10.0, 3, &[Some(0.5), Some(0.5), Some(0.5)]),
    ];
    let data = calibration("e-1 x", &runs).unwrap();
    assert_eq!(data.x_axis, XAxis::Confidence);
    let s = &data.panels[0].series[0];
    assert_eq!(s.runs, 2);
    let want = [(0.2, 0.5), ((3.0 * 0.6 + 0.5) / 4.0, 0.75), (0.9, 0.0)];
    assert_eq!(s.points.len(), want.len());
    for (got, want) in s.points.iter().zip(want) {
        assert!(
            (got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12,
            "{got:?} vs {want:?}"
        );
    }
    assert!(calibration("e-1 x", &runs[2..]).is_err());
}

/// A run of 3 classes (train counts 10, 100, 1) with a confusion matrix of `counts`.
fn with_matrix(id: u64, method: &str, ratio: f64, counts: &[u64]) -> Run {
    let mut r = run(id, method, ratio, id, &[Some(0.5), Some(0.5), Some(0.5)]);
    r.summary.as_mut().unwrap().confusion = Some(ConfusionMatrix {
        classes: 3,
        counts: counts.to_vec(),
    });
    r
}

#[test]
fn confusion_matrices_sum_over_seeds_per_method_and_ratio() {
    #[rustfmt::skip]
    let runs = vec![
        with_matrix(1, "ce", 10.0, &[2, 0, 0,  1, 1, 0,  0, 0, 0]),
        with_matrix(2, "ce", 10.0, &[1, 1, 0,  0, 2, 0,  0, 3, 1]),
        with_matrix(3, "focal", 10.0, &[1, 0, 0,  0, 1, 0,  0, 0, 1]),
        with_matrix(4, "ce", 100.0, &[1, 0, 0,  0, 1, 0,  0, 0, 1]),
        // No matrix (a command run, an older engine, over 1000 classes): left out.
        run(5, "ce", 10.0, 5, &[Some(0.5), Some(0.5), Some(0.5)]),
        // A matrix that is not classes x classes: left out as well.
        with_matrix(6, "ce", 10.0, &[1, 2, 3]),
    ];
    let data = confusion("e-1 x", &runs).unwrap();
    assert!(data.title.starts_with("e-1 x"), "{}", data.title);
    let titles: Vec<Vec<&str>> = data
        .rows
        .iter()
        .map(|row| row.iter().map(|m| m.title.as_str()).collect())
        .collect();
    assert_eq!(
        titles,
        [
            vec![
                "ce (2), imbalance ratio 10",
                "focal (1), imbalance ratio 10"
            ],
            vec!["ce (1), imbalance ratio 100"],
        ]
    );
    let ce = &data.rows[0][0];
    assert_eq!(ce.classes, 3);
    #[rustfmt::skip]
    assert_eq!(ce.counts, vec![3, 1, 0,  1, 3, 0,  0, 3, 1]);
    assert_eq!(ce.train_counts, vec![10, 100, 1]);
    // Rows are normalized: each true class's shares sum to 1.
    assert_eq!(ce.shares(0).map(|s| s[0]), Some(0.75));
    assert_eq!(ce.shares(2).map(|s| s[1]), Some(0.75));
    for t in 0..3 {
        let sum: f64 = ce.shares(t).unwrap().iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "row {t}: {sum}");
    }
}

#[test]
fn a_class_without_test_images_has_no_share_and_no_matrix_is_a_clear_error() {
    let one = with_matrix(1, "ce", 10.0, &[2, 0, 0, 0, 0, 0, 0, 1, 1]);
    let data = confusion("e", &[one]).unwrap();
    assert_eq!(data.rows[0][0].shares(1).map(|s| s[1]), None);
    assert_eq!(data.rows[0][0].shares(2).map(|s| s[2]), Some(0.5));

    let without = run(2, "ce", 10.0, 1, &[Some(0.5), Some(0.5), Some(0.5)]);
    match confusion("e-7 cmd", &[without]) {
        Err(PlotError::Empty(why)) => {
            assert!(why.contains("e-7 cmd"), "{why}");
            assert!(why.contains("confusion matrix"), "{why}");
            assert!(why.contains("1000 classes"), "{why}");
        }
        other => panic!("expected nothing to plot, got {other:?}"),
    }
}
