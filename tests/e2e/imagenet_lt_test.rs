//! An ImageNet-LT-shaped data set end to end (issue 14): a generated fixture of JPEGs of varying
//! sizes and aspect ratios, 20 classes, split lists in the field's `relative/path label` format
//! with an exponential profile, trained for an epoch through the real daemon with `cauda submit`,
//! torchvision's ResNet-50 and pretrained weights written by PyTorch
//! (`bench/fixtures/imagenet_backbones.py`), pinned by their SHA-256.

use crate::common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cauda_proto::v1;
use common::*;
use image::{Rgb, RgbImage};

const CLASSES: usize = 20;
const LIMIT: Duration = Duration::from_secs(900);

/// `root/{train,val,test}/nNNN/*.jpg` and the three lists: class c keeps
/// round(24 * 12^(-c/19)) training images (24 down to 2), 2 validation and 4 test images.
fn fixture(root: &Path) {
    let mut lists = [String::new(), String::new(), String::new()];
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for c in 0..CLASSES {
        let train = (24.0 * 12f64.powf(-(c as f64) / (CLASSES as f64 - 1.0))).round() as usize;
        for (split, n) in [(0, train), (1, 2), (2, 4)] {
            let folder = ["train", "val", "test"][split];
            for i in 0..n {
                let (w, h) = (40 + next() % 90, 40 + next() % 90);
                let tint = [(c * 12) as u8, (255 - c * 12) as u8, (next() % 256) as u8];
                let img = RgbImage::from_fn(w, h, |x, y| {
                    let v = ((x * 7 + y * 3 + c as u32 * 11) % 64) as u8;
                    Rgb([
                        tint[0].saturating_add(v),
                        tint[1].saturating_sub(v),
                        tint[2] ^ v,
                    ])
                });
                let rel = format!("{folder}/n{c:03}/{folder}_{c}_{i}.jpg");
                let path = root.join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                img.save(&path).unwrap();
                writeln!(lists[split], "{rel} {c}").unwrap();
            }
        }
    }
    for (name, text) in [
        "ImageNet_LT_train.txt",
        "ImageNet_LT_val.txt",
        "ImageNet_LT_test.txt",
    ]
    .iter()
    .zip(&lists)
    {
        std::fs::write(root.join(name), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imagenet_lt_shaped_fixture_trains_through_the_daemon_with_pretrained_resnet50() {
    let Some(python) = torch_python() else { return };
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("datasets/imagenet-lt");
    fixture(&data);
    // torchvision's ResNet-50 as PyTorch writes it (seeded; its fc has other classes: the head
    // is new).
    let weights = dir.path().join("datasets/weights");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/fixtures/imagenet_backbones.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&weights)
        .args(["resnet50", "--size", "32", "--classes", "5"])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pretrained = weights.join("resnet50.safetensors");
    assert!(pretrained.is_file());

    let config = format!(
        "devices = [\"cpu:1\"]\nmax_retries = 0\ndata_roots = [\"{}\"]\n",
        dir.path().join("datasets").display()
    );
    let daemon = Caudad::start(dir.path(), &config);
    let spec = format!(
        r#"name = "imagenet-lt-fixture"
method = "ce"
[data]
format = "list"
path = "{data}"
train_list = "ImageNet_LT_train.txt"
val_list = "ImageNet_LT_val.txt"
test_list = "ImageNet_LT_test.txt"
image_size = 32
[model]
backbone = "resnet50"
pretrained = "{pretrained}"
[train]
epochs = 1
batch_size = 32
optimizer = {{ name = "sgd", lr = 0.01, momentum = 0.9 }}
[augment]
crop_flip = true
color_jitter = 0.4
"#,
        data = data.display(),
        pretrained = pretrained.display(),
    );
    let file = dir.path().join("imagenet-lt.toml");
    std::fs::write(&file, &spec).unwrap();
    let out = cauda_ok(&cli, &daemon.url, &["submit", file.to_str().unwrap()]);
    let id: u64 = out
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|r| r.strip_prefix("r-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a run id in {out}"));
    let mut client = daemon.client().await;
    let run = wait_all_done(&mut client, &[id], LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Succeeded, "{}", run.error());
    let config: serde_json::Value = serde_json::from_str(&run.config_json).unwrap();
    assert_eq!(
        config["model"]["pretrained_sha256"].as_str().map(str::len),
        Some(64),
        "the weights' hash is part of the run's identity"
    );
    assert_eq!(
        config["data"]["lists_sha256"].as_str().map(str::len),
        Some(64),
        "so are the split lists'"
    );
    let summary: serde_json::Value = serde_json::from_str(&run.summary_json).unwrap();
    let counts: Vec<u64> = summary["class_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), CLASSES);
    assert_eq!(
        (counts[0], counts[CLASSES - 1]),
        (24, 2),
        "the profile is the list's"
    );
    let per_class = summary["last"]["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), CLASSES);
    assert!(
        summary["val_selected_top1"].is_number(),
        "the validation list selects: {summary}"
    );
    let lines = log_lines(&events(&mut client, id).await);
    assert!(
        lines.iter().any(|l| l.starts_with("epoch 1/1")),
        "{lines:#?}"
    );

    // A list naming a missing image is the run's failure, with the file and line.
    std::fs::write(
        data.join("ImageNet_LT_test.txt"),
        "test/n000/test_0_0.jpg 0\ntest/n000/gone.jpg 0\n",
    )
    .unwrap();
    let ids = submit_ids(&mut client, &spec.replace("epochs = 1", "epochs = 2")).await;
    let failed = wait_all_done(&mut client, &ids, LIMIT).await.remove(0);
    assert_eq!(failed.state(), v1::RunState::Failed);
    assert!(
        failed.error().contains("ImageNet_LT_test.txt") && failed.error().contains("line 2"),
        "{}",
        failed.error()
    );
}
