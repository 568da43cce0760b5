//! Augmentation tests against the numpy fixture (bench/fixtures/augment.py), with the random
//! choices (offsets, lam, permutation, box) passed explicitly, plus seeded-RNG properties.

use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/augment.json"
));

#[derive(Deserialize)]
struct Fixture {
    crop: Crop,
    batch: Batch,
    mixup: Vec<MixupCase>,
    cutmix: Vec<CutmixCase>,
    remix: Remix,
}
#[derive(Deserialize)]
struct Crop {
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    img: Vec<u8>,
    cases: Vec<CropCase>,
}
#[derive(Deserialize)]
struct CropCase {
    dx: usize,
    dy: usize,
    flip: bool,
    out: Vec<u8>,
}
#[derive(Deserialize)]
struct Batch {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    pixels: Vec<f32>,
    labels: Vec<u32>,
}
#[derive(Deserialize)]
struct MixupCase {
    lam: f32,
    perm: Vec<usize>,
    pixels: Vec<f32>,
    labels_b: Vec<u32>,
}
#[derive(Deserialize)]
struct CutmixCase {
    lam: f32,
    cy: usize,
    cx: usize,
    perm: Vec<usize>,
    #[serde(rename = "box")]
    cut: [usize; 4],
    lam_adjusted: f64,
    pixels: Vec<f32>,
}
#[derive(Deserialize)]
struct Remix {
    counts: Vec<usize>,
    kappa: f64,
    tau: f64,
    cases: Vec<RemixCase>,
}
#[derive(Deserialize)]
struct RemixCase {
    lam: f32,
    perm: Vec<usize>,
    lam_y: Vec<f32>,
    pixels: Vec<f32>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("augment fixture parses")
}

fn assert_pixels(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

#[test]
fn crop_flip_one_matches_numpy_exactly() {
    let Crop {
        c,
        h,
        w,
        pad,
        img,
        cases,
    } = fixture().crop;
    assert_eq!(cases.len(), 7);
    for case in cases {
        let got = crop_flip_one(&img, c, h, w, pad, case.dx, case.dy, case.flip).unwrap();
        assert_eq!(
            got, case.out,
            "dx {} dy {} flip {}",
            case.dx, case.dy, case.flip
        );
    }
    assert_eq!(
        crop_flip_one(&img, c, h, w, pad, 5, 0, false),
        Err(AugmentError::Offset { dx: 5, dy: 0, pad })
    );
    assert!(matches!(
        crop_flip_one(&img[1..], c, h, w, pad, 0, 0, false),
        Err(AugmentError::Length { .. })
    ));
}

#[test]
fn crop_flip_batch_is_seeded_and_uses_valid_offsets() {
    let Crop {
        c, h, w, pad, img, ..
    } = fixture().crop;
    let batch: Vec<u8> = img.iter().chain(&img).chain(&img).copied().collect();
    let a = crop_flip(&batch, c, h, w, pad, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let b = crop_flip(&batch, c, h, w, pad, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    assert_eq!(a, b);
    // Every output image equals crop_flip_one for some valid (dx, dy, flip).
    for out in a.chunks_exact(c * h * w) {
        let found = (0..=2 * pad).any(|dx| {
            (0..=2 * pad).any(|dy| {
                [false, true]
                    .iter()
                    .any(|&f| crop_flip_one(&img, c, h, w, pad, dx, dy, f).unwrap() == out)
            })
        });
        assert!(found);
    }
    assert!(crop_flip(&batch[1..], c, h, w, pad, &mut ChaCha8Rng::seed_from_u64(3)).is_err());
}

#[test]
fn mixup_matches_numpy() {
    let f = fixture();
    let b = &f.batch;
    let len = b.c * b.h * b.w;
    for case in &f.mixup {
        let m = mixup_with(&b.pixels, &b.labels, len, case.lam, &case.perm).unwrap();
        assert_pixels(&m.pixels, &case.pixels, "mixup");
        assert_eq!(m.labels_a, b.labels);
        assert_eq!(m.labels_b, case.labels_b);
        assert_eq!(m.lam, vec![case.lam; b.n]);
    }
}

#[test]
fn cutmix_matches_numpy() {
    let f = fixture();
    let b = &f.batch;
    for case in &f.cutmix {
        let cut = cutmix_box(b.h, b.w, case.lam, case.cy, case.cx).unwrap();
        assert_eq!(
            [cut.y0, cut.y1, cut.x0, cut.x1],
            case.cut,
            "box for lam {}",
            case.lam
        );
        let m = cutmix_with(&b.pixels, &b.labels, b.c, b.h, b.w, &case.perm, cut).unwrap();
        assert_pixels(&m.pixels, &case.pixels, "cutmix");
        for &l in &m.lam {
            assert!(
                (l as f64 - case.lam_adjusted).abs() < 1e-6,
                "lam {l} vs {}",
                case.lam_adjusted
            );
        }
        let labels_b: Vec<u32> = case.perm.iter().map(|&j| b.labels[j]).collect();
        assert_eq!(m.labels_b, labels_b);
    }
}

#[test]
fn remix_matches_numpy() {
    let f = fixture();
    let b = &f.batch;
    let params = RemixParams {
        alpha: 1.0,
        kappa: f.remix.kappa,
        tau: f.remix.tau,
    };
    let mut saw = (false, false);
    for case in &f.remix.cases {
        let m = remix_with(
            &b.pixels,
            &b.labels,
            b.c * b.h * b.w,
            case.lam,
            &case.perm,
            &f.remix.counts,
            &params,
        )
        .unwrap();
        assert_pixels(&m.pixels, &case.pixels, "remix pixels");
        assert_eq!(m.lam, case.lam_y, "remix lam_y for lam_x {}", case.lam);
        saw.0 |= case.lam_y.contains(&0.0);
        saw.1 |= case.lam_y.contains(&1.0);
    }
    assert!(
        saw.0 && saw.1,
        "the fixture exercises both re-balancing branches"
    );
}

#[test]
fn random_mixers_are_seeded_and_consistent() {
    let f = fixture();
    let b = &f.batch;
    let len = b.c * b.h * b.w;
    let rng = || ChaCha8Rng::seed_from_u64(11);
    let m = mixup(&b.pixels, &b.labels, len, 1.0, &mut rng()).unwrap();
    assert_eq!(
        m,
        mixup(&b.pixels, &b.labels, len, 1.0, &mut rng()).unwrap()
    );
    assert!((0.0..=1.0).contains(&m.lam[0]));
    let c = cutmix(&b.pixels, &b.labels, b.c, b.h, b.w, 1.0, &mut rng()).unwrap();
    assert_eq!(
        c,
        cutmix(&b.pixels, &b.labels, b.c, b.h, b.w, 1.0, &mut rng()).unwrap()
    );
    let r = remix(
        &b.pixels,
        &b.labels,
        len,
        &f.remix.counts,
        &RemixParams::default(),
        &mut rng(),
    )
    .unwrap();
    // Remix's images are mixup's with the same draws.
    assert_eq!(r.pixels, m.pixels);
    assert_eq!(r.labels_b, m.labels_b);
}

#[test]
fn bad_inputs_are_errors() {
    let f = fixture();
    let b = &f.batch;
    let len = b.c * b.h * b.w;
    let id: Vec<usize> = (0..b.n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(matches!(
        mixup(&b.pixels, &b.labels, len, 0.0, &mut rng),
        Err(AugmentError::Parameter { .. })
    ));
    assert!(matches!(
        mixup_with(&b.pixels, &b.labels, len, 1.5, &id),
        Err(AugmentError::Lambda { .. })
    ));
    assert!(matches!(
        mixup_with(&b.pixels[1..], &b.labels, len, 0.5, &id),
        Err(AugmentError::Length { .. })
    ));
    let dup = vec![0; b.n];
    assert_eq!(
        mixup_with(&b.pixels, &b.labels, len, 0.5, &dup),
        Err(AugmentError::NotAPermutation { n: b.n })
    );
    let bad_box = CutBox {
        y0: 0,
        y1: b.h + 1,
        x0: 0,
        x1: 1,
    };
    assert!(matches!(
        cutmix_with(&b.pixels, &b.labels, b.c, b.h, b.w, &id, bad_box),
        Err(AugmentError::CutBox { .. })
    ));
    let short_counts = [5usize, 4];
    assert!(matches!(
        remix_lambdas(&b.labels, &id, &short_counts, 0.3, &RemixParams::default()),
        Err(AugmentError::Count { .. })
    ));
}
