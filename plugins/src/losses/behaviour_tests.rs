//! Checks the contracts the numpy fixture cannot: parameter validation names the parameter and range,
//! `combine` rejects mismatched shapes instead of panicking, its two paths agree, and the documented
//! identities between losses hold.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::*;

const COUNTS: [usize; 4] = [400, 100, 20, 5];

fn logits(device: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..20).map(|k| ((k * 7 % 11) as f32 - 5.0) * 0.6).collect();
    Tensor::<2>::from_data(TensorData::new(v, [5, 4]), device)
}

fn labels(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_data().try_to_vec::<f32>().expect("f32")[0]
}

fn invalid(err: LossError) -> (&'static str, &'static str) {
    match err {
        LossError::InvalidParameter { param, allowed, .. } => (param, allowed),
        other => panic!("expected InvalidParameter, got {other}"),
    }
}

#[test]
fn bad_parameters_name_the_parameter_and_range() {
    let err = |r: Result<()>| invalid(r.expect_err("must be rejected"));
    assert_eq!(err(Focal::new(-0.1).map(drop)), ("gamma", "gamma >= 0"));
    assert_eq!(err(Focal::new(f64::NAN).map(drop)), ("gamma", "gamma >= 0"));
    let cb = |beta, base| ClassBalanced::new(&COUNTS, beta, base).map(drop);
    assert_eq!(
        err(cb(1.0, ClassBalancedBase::CrossEntropy)),
        ("beta", "0 <= beta < 1")
    );
    assert_eq!(
        err(cb(-0.5, ClassBalancedBase::CrossEntropy)),
        ("beta", "0 <= beta < 1")
    );
    assert_eq!(
        err(cb(0.9, ClassBalancedBase::Focal { gamma: -1.0 })),
        ("gamma", "gamma >= 0")
    );
    assert_eq!(err(Ldam::new(&COUNTS, 0.5, 0.0).map(drop)), ("s", "s > 0"));
    assert_eq!(
        err(Ldam::new(&COUNTS, -0.5, 30.0).map(drop)),
        ("max_m", "max_m >= 0")
    );
    assert_eq!(
        err(LogitAdjusted::new(&COUNTS, f64::INFINITY).map(drop)),
        ("tau", "tau >= 0")
    );
    let drw = Drw::new(std::sync::Arc::new(CrossEntropy), &COUNTS, 160, 1.5).map(drop);
    assert_eq!(err(drw), ("beta", "0 <= beta < 1"));
    let message = Focal::new(-1.0).expect_err("negative gamma").to_string();
    assert!(
        message.contains("focal") && message.contains("gamma >= 0"),
        "{message}"
    );
}

#[test]
fn bad_counts_are_rejected_by_every_count_based_loss() {
    let zero = [10, 0, 3];
    let expect_zero = |r: Result<()>| {
        assert!(
            matches!(r, Err(LossError::ZeroCount { class: 1, .. })),
            "{r:?}"
        );
    };
    expect_zero(WeightedCe::new(&zero).map(drop));
    expect_zero(ClassBalanced::new(&zero, 0.99, ClassBalancedBase::CrossEntropy).map(drop));
    expect_zero(Ldam::new(&zero, 0.5, 30.0).map(drop));
    expect_zero(BalancedSoftmax::new(&zero).map(drop));
    expect_zero(LogitAdjusted::new(&zero, 1.0).map(drop));
    expect_zero(Drw::new(std::sync::Arc::new(CrossEntropy), &zero, 1, 0.99).map(drop));
    expect_zero(log_prior(&zero).map(drop));
    assert!(matches!(
        BalancedSoftmax::new(&[]),
        Err(LossError::EmptyCounts { .. })
    ));
}

#[test]
fn mismatched_shapes_are_errors_not_panics() {
    let device = Device::default();
    let ce = CrossEntropy;
    let z = logits(&device);
    let short = labels(&[0, 1, 2], &device);
    assert!(matches!(
        combine(&ce, z.clone(), short.clone(), None, 0),
        Err(LossError::BatchMismatch {
            what: "labels_a",
            expected: 5,
            got: 3
        })
    ));
    let a = labels(&[0, 1, 2, 3, 0], &device);
    let mix = Mixup {
        labels_b: a.clone(),
        lam: Tensor::<1>::ones([4], &device),
    };
    assert!(matches!(
        combine(&ce, z.clone(), a.clone(), Some(mix), 0),
        Err(LossError::BatchMismatch { what: "lam", .. })
    ));
    let three = WeightedCe::new(&[5, 3, 1]).expect("wce");
    assert!(matches!(
        combine(&three, z.clone(), a.clone(), None, 0),
        Err(LossError::ClassMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        posthoc_adjust(z, &[0.0; 3], 1.0),
        Err(LossError::ClassMismatch {
            what: "log_prior",
            ..
        })
    ));
    let base = std::sync::Arc::new(BalancedSoftmax::new(&[5, 3, 1]).expect("bs"));
    assert!(matches!(
        Drw::new(base, &COUNTS, 1, 0.99),
        Err(LossError::ClassMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
}

#[test]
fn mixup_with_all_ones_equals_hard_labels() {
    let device = Device::default();
    let loss =
        ClassBalanced::new(&COUNTS, 0.999, ClassBalancedBase::Focal { gamma: 2.0 }).expect("cb");
    let a = labels(&[0, 3, 2, 1, 3], &device);
    let mix = Mixup {
        labels_b: labels(&[1, 1, 0, 0, 2], &device),
        lam: Tensor::<1>::ones([5], &device),
    };
    let hard = scalar(combine(&loss, logits(&device), a.clone(), None, 0).expect("hard"));
    let soft = scalar(combine(&loss, logits(&device), a, Some(mix), 0).expect("mix"));
    assert!((hard - soft).abs() <= 1e-6 * hard.abs(), "{hard} vs {soft}");
}

#[test]
fn batch_lam_without_weights_is_the_mixup_criterion() {
    let device = Device::default();
    let loss = Focal::new(1.0).expect("focal");
    let (a, b) = ([0, 3, 2, 1, 3], [1, 1, 0, 0, 2]);
    let lam = 0.3_f32;
    let mix = Mixup {
        labels_b: labels(&b, &device),
        lam: Tensor::<1>::full([5], lam, &device),
    };
    let mixed = combine(&loss, logits(&device), labels(&a, &device), Some(mix), 0);
    let l_a = combine(&loss, logits(&device), labels(&a, &device), None, 0);
    let l_b = combine(&loss, logits(&device), labels(&b, &device), None, 0);
    let (mixed, l_a, l_b) = (
        scalar(mixed.expect("mix")),
        scalar(l_a.expect("a")),
        scalar(l_b.expect("b")),
    );
    let want = lam * l_a + (1.0 - lam) * l_b;
    assert!(
        (mixed - want).abs() <= 1e-6 * want.abs(),
        "{mixed} vs {want}"
    );
}

#[test]
fn logit_adjusted_with_tau_one_is_balanced_softmax() {
    let device = Device::default();
    let a = labels(&[0, 3, 2, 1, 3], &device);
    let la = LogitAdjusted::new(&COUNTS, 1.0).expect("la");
    let bs = BalancedSoftmax::new(&COUNTS).expect("bs");
    let x: Vec<f32> = la
        .per_sample(logits(&device), a.clone())
        .into_data()
        .try_to_vec()
        .expect("f32");
    let y: Vec<f32> = bs
        .per_sample(logits(&device), a)
        .into_data()
        .try_to_vec()
        .expect("f32");
    for (x, y) in x.iter().zip(&y) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
    }
}

#[test]
fn drw_switches_weights_at_start_epoch_and_keeps_the_head_contract() {
    let ldam = Ldam::new(&COUNTS, 0.5, 30.0).expect("ldam");
    let margins = ldam.margins().to_vec();
    assert!((margins[3] - 0.5).abs() < 1e-6 && margins.windows(2).all(|m| m[0] < m[1]));
    let drw = Drw::new(std::sync::Arc::new(ldam), &COUNTS, 160, 0.9999).expect("drw");
    assert!(drw.wants_cosine_head());
    assert_eq!(drw.class_weights(159), None);
    let w = drw.class_weights(160).expect("weights from start_epoch");
    assert!((w.iter().sum::<f32>() - 4.0).abs() < 1e-5);
    assert!(
        w.windows(2).all(|p| p[0] < p[1]),
        "rarer classes weigh more: {w:?}"
    );
}
