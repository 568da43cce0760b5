//! A `resources.gpus = 2` run through the real daemon (issue 14): the scheduler grants it two
//! devices, its worker trains data-parallel on both (a flex-only build computes on the CPU what
//! two GPUs would), and it ends with the accuracy and per-epoch losses of the same spec on one
//! device (LeNet has no BatchNorm, so the two are the same computation up to float rounding).

use crate::common;

use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(300);

fn spec(gpus: usize) -> String {
    format!(
        r#"name = "ddp-{gpus}"
[data]
format = "synthetic"
synthetic = {{ num_classes = 4, per_class_train = 30, per_class_test = 10, channels = 1, height = 28, width = 28, seed = 5 }}
[model]
backbone = "lenet"
[train]
epochs = 3
batch_size = 16
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }}
[augment]
crop_flip = true
[resources]
gpus = {gpus}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_gpu_run_trains_data_parallel_and_matches_one_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(
        dir.path(),
        "devices = [\"gpu:0\", \"gpu:1\"]\nmax_retries = 0\n",
    );
    let mut client = daemon.client().await;
    let one = submit_ids(&mut client, &spec(1)).await;
    let two = submit_ids(&mut client, &spec(2)).await;
    let runs = wait_all_done(&mut client, &[one[0], two[0]], LIMIT).await;
    for r in &runs {
        assert_eq!(r.state(), v1::RunState::Succeeded, "{}", r.error());
    }
    let lines = log_lines(&events(&mut client, two[0]).await);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("data-parallel over 2 devices")),
        "{lines:#?}"
    );
    let single = log_lines(&events(&mut client, one[0]).await);
    assert!(
        !single.iter().any(|l| l.contains("data-parallel")),
        "{single:#?}"
    );
    let summary =
        |r: &v1::Run| -> serde_json::Value { serde_json::from_str(&r.summary_json).unwrap() };
    let (a, b) = (summary(&runs[0]), summary(&runs[1]));
    let top1 = |s: &serde_json::Value| s["last"]["test_top1"].as_f64().unwrap();
    assert!(
        (top1(&a) - top1(&b)).abs() < 1e-6,
        "1 GPU {} vs 2 GPUs {}",
        top1(&a),
        top1(&b)
    );
    let losses = |lines: &[String]| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| l.starts_with("epoch "))
            .filter_map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "loss")
                    .nth(1)
                    .and_then(|v| v.trim_end_matches(',').parse().ok())
            })
            .collect()
    };
    let (la, lb) = (losses(&single), losses(&lines));
    assert_eq!(la.len(), 3, "{single:#?}");
    for (x, y) in la.iter().zip(&lb) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "losses {la:?} vs {lb:?}"
        );
    }
}
