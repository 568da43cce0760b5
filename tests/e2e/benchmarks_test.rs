//! The shipped CIFAR-LT benchmark specs (`examples/benchmarks/cifar{10,100}-lt.toml`) through the
//! real daemon, on generated files in Krizhevsky's binary CIFAR layout (50,000 training and
//! 10,000 test images of random pixels, labels cycling over the classes: the shipped split files
//! hold per-class ranks, so any file with 5,000 or 500 images per class takes them). Deployed as
//! the specs' comments say (data and split files copied, paths pointed at them): the whole sweep
//! is accepted with each split file pinned by its hash, and the ratio-100 recipe (ResNet-32
//! option A, Cao's normalization and warm-up) trains its first epoch on the 12,406 / 10,847
//! images of Cao's selection. A full first epoch of ResNet-32 on the CPU takes minutes, which is
//! why only one point of each spec trains and only until its first epoch is stored.

use crate::common;

use std::path::Path;
use std::time::Duration;

use cauda_proto::v1::{self, cancel_run_request::Target};
use common::*;

/// One epoch of ResNet-32 over ~12k images on a shared 2-core CPU, twice over.
const EPOCH_LIMIT: Duration = Duration::from_secs(2400);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Writes `n` records of `label_bytes(i)` + 3072 pixel bytes (a cheap LCG) to `path`.
fn write_batch(path: &Path, n: usize, first: usize, label_bytes: impl Fn(usize) -> Vec<u8>) {
    let mut out = Vec::with_capacity(n * 3074);
    let mut x = 0x9E37_79B9u32 ^ first as u32;
    for i in first..first + n {
        out.extend(label_bytes(i));
        out.extend((0..3072).map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        }));
    }
    std::fs::write(path, out).unwrap();
}

/// CIFAR-10 (`data_batch_{1..5}.bin`, `test_batch.bin`) and CIFAR-100 (`train.bin`, `test.bin`)
/// under `root`, and the shipped split files under `root/cifar-lt`.
fn deploy(root: &Path) {
    let c10 = root.join("cifar10");
    let c100 = root.join("cifar100");
    let lt = root.join("cifar-lt");
    for d in [&c10, &c100, &lt] {
        std::fs::create_dir_all(d).unwrap();
    }
    for b in 0..5 {
        let path = c10.join(format!("data_batch_{}.bin", b + 1));
        write_batch(&path, 10_000, b * 10_000, |i| vec![(i % 10) as u8]);
    }
    write_batch(&c10.join("test_batch.bin"), 10_000, 50_000, |i| {
        vec![(i % 10) as u8]
    });
    let fine = |i: usize| vec![(i % 100 / 5) as u8, (i % 100) as u8];
    write_batch(&c100.join("train.bin"), 50_000, 0, fine);
    write_batch(&c100.join("test.bin"), 10_000, 50_000, fine);
    for entry in std::fs::read_dir(repo().join("plugins/assets/splits")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, lt.join(path.file_name().unwrap())).unwrap();
    }
}

/// The shipped spec with its data paths pointed at `root`, as a lab deploys it.
fn deployed_spec(name: &str, root: &Path) -> String {
    let text = std::fs::read_to_string(repo().join(format!("examples/benchmarks/{name}-lt.toml")))
        .unwrap();
    let root = root.display();
    text.replace(
        &format!("/usr/share/datasets/{name}\""),
        &format!("{root}/{name}\""),
    )
    .replace("/usr/share/datasets/cifar-lt", &format!("{root}/cifar-lt"))
}

/// The spec's recipe at one point (no sweep, no references): ce at ratio 100, seed 0.
fn one_point(spec: &str) -> String {
    let base = spec.split("\n[sweep]").next().unwrap();
    base.replace("[report]\nrelative_accuracy = true", "")
}

async fn cancel_experiment(
    client: &mut v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    id: u64,
) {
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::ExperimentId(id)),
            reason: Some("benchmark test: first epoch checked".into()),
        })
        .await
        .expect("cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cifar_lt_benchmark_specs_submit_and_train_their_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("datasets");
    deploy(&data);
    let daemon = Caudad::start(
        dir.path(),
        &format!(
            "devices = [\"gpu:0\"]\nmax_retries = 0\ndata_roots = [\"{}\"]\n",
            data.display()
        ),
    );
    let mut client = daemon.client().await;
    for name in ["cifar10", "cifar100"] {
        let spec = deployed_spec(name, &data);
        let undeployed = spec
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("/usr/share"))
            .count();
        assert_eq!(undeployed, 0, "{name}: paths left undeployed");
        // The whole sweep: 6 methods x 3 ratios x 3 seeds, plus the balanced references.
        let sweep = submit(&mut client, &spec).await;
        let grid: Vec<_> = sweep
            .runs
            .iter()
            .filter(|r| r.name.contains("train.seed="))
            .collect();
        assert!(grid.len() >= 54, "{name}: {} grid runs", grid.len());
        cancel_experiment(&mut client, sweep.experiment_id).await;
        // One point trains until its first epoch is stored.
        let point = submit(&mut client, &one_point(&spec)).await;
        assert_eq!(point.runs.len(), 1, "{name}: {:#?}", point.runs);
        let id = point.runs[0].run_id;
        let first = wait_for(EPOCH_LIMIT, &format!("{name}: first epoch"), || {
            let mut c = client.clone();
            async move {
                let run = get_run(&mut c, id).await;
                assert!(
                    !is_terminal(run.state()),
                    "{name}: the run ended before its first epoch: {:?} {:?}",
                    run.state(),
                    run.error
                );
                epochs(&mut c, id).await.into_iter().next()
            }
        })
        .await;
        cancel_experiment(&mut client, point.experiment_id).await;
        assert_eq!((first.stage, first.epoch), (1, 1), "{name}");
        // Cao's warm-up: epoch 1 of 5 trains at lr 0.1 * 1/5.
        assert!((first.lr - 0.02).abs() < 1e-12, "{name}: lr {}", first.lr);
        assert!(first.train_loss.is_finite() && first.train_loss > 0.0);
        assert!(first.images_per_sec > 0.0);
        let run = get_run(&mut client, id).await;
        let config: serde_json::Value = serde_json::from_str(&run.config_json).unwrap();
        assert_eq!(config["model"]["backbone"], "resnet32", "{name}");
        assert!(
            config["data"]["split_file_sha256"]
                .as_str()
                .is_some_and(|s| s.len() == 64),
            "{name}: split file pinned: {}",
            config["data"]
        );
    }
}
