//! The large benchmarks' transforms against torchvision: `bench/fixtures/imagenet_transforms.py`
//! writes seeded PNG images of six shapes (landscape, portrait, square, thin strips) and the
//! bytes torchvision gives on PIL images for the evaluation transform (Resize + CenterCrop) and
//! for RandomResizedCrop + flip + ColorJitter with their draws fixed. cauda's transforms, given
//! the same draws, must give the same bytes: not close, equal. Without the project's PyTorch
//! venv the test prints why it was skipped (a failure under `CAUDA_REQUIRE_ALL`, as in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use cauda_plugins::augment::color_jitter::JitterDraw;
use cauda_plugins::augment::imagenet::{TrainDraw, TrainTransform, Window, eval_transform};
use cauda_plugins::augment::resample::{Rgb, resize_bilinear};

mod common;

/// A JSON array of integers.
fn ints(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn load_png(path: &Path) -> Rgb {
    let img = image::open(path).unwrap().to_rgb8();
    Rgb {
        width: img.width() as usize,
        height: img.height() as usize,
        pixels: img.into_raw(),
    }
}

#[test]
fn transforms_give_torchvisions_bytes() {
    let Some(python) = common::venv_python("the torchvision comparison") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/fixtures/imagenet_transforms.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run imagenet_transforms.py");
    assert!(
        out.status.success(),
        "imagenet_transforms.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let (mut evals, mut trains, mut resizes) = (0, 0, 0);
    for case in cases {
        let img = load_png(&dir.path().join(case["image"].as_str().unwrap()));
        let side = case["side"].as_u64().unwrap_or(0) as usize;
        let expected = std::fs::read(dir.path().join(case["expected"].as_str().unwrap())).unwrap();
        let (got, size) = match case["kind"].as_str().unwrap() {
            "resize" => {
                resizes += 1;
                let s = &case["size"];
                let (w, h) = (s[0].as_u64().unwrap(), s[1].as_u64().unwrap());
                (
                    resize_bilinear(&img, w as usize, h as usize),
                    (w as usize, h as usize),
                )
            }
            "eval" => {
                evals += 1;
                (eval_transform(&img, side), (side, side))
            }
            _ => {
                trains += 1;
                let w: Vec<usize> = ints(&case["window"]).iter().map(|&v| v as usize).collect();
                let order: Vec<u8> = ints(&case["order"]).iter().map(|&v| v as u8).collect();
                let f: Vec<f32> = case["factors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let draw = TrainDraw {
                    window: Window {
                        top: w[0],
                        left: w[1],
                        height: w[2],
                        width: w[3],
                    },
                    flip: case["flip"].as_bool().unwrap(),
                    jitter: Some(JitterDraw {
                        order: [order[0], order[1], order[2], order[3]],
                        factors: [Some(f[0]), Some(f[1]), Some(f[2])],
                    }),
                };
                let t = TrainTransform {
                    side,
                    flip: true,
                    jitter: None,
                };
                (t.apply_draw(&img, &draw), (side, side))
            }
        };
        assert_eq!((got.width, got.height), size, "{case}");
        let differ = got
            .pixels
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differ,
            0,
            "{case}: {differ} of {} bytes differ from torchvision's",
            expected.len()
        );
        assert_eq!(got.pixels.len(), expected.len());
    }
    assert!(
        evals >= 10 && trains >= 20 && resizes >= 40,
        "{evals} eval, {trains} train, {resizes} resize cases"
    );
}
