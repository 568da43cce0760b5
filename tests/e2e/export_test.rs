//! Export through the daemon: tiny ResNet-8 (BatchNorm) and LeNet runs with a cosine head train
//! in `caudad serve`'s workers; ExportRun streams their weights as safetensors (PyTorch's names,
//! checked by `bench/export_check.py` against cauda's logits when the project's PyTorch venv
//! exists) and as Burn's record (the checkpoint's model part, byte for byte); unknown runs,
//! missing checkpoints and a missing format are refused with the right codes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use burn::tensor::Device;
use cauda_plugins::export::{case_from_images, rebuild};
use cauda_plugins::spec::ResolvedRun;
use cauda_plugins::train::{self, Checkpoint};
use cauda_proto::v1::{self, cauda_client::CaudaClient};
use common::*;
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(120);

/// ExportRun's meta and bytes, checked against the meta's size and digest.
async fn export(
    client: &mut CaudaClient<Channel>,
    run_id: u64,
    format: v1::ExportFormat,
    epoch: Option<u32>,
) -> Result<(v1::ExportMeta, Vec<u8>), tonic::Status> {
    let mut stream = client
        .export_run(v1::ExportRunRequest {
            run_id,
            format: format as i32,
            epoch,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut meta = None;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        match chunk.part {
            Some(v1::export_chunk::Part::Meta(m)) => {
                assert!(meta.is_none() && bytes.is_empty(), "meta comes first, once");
                meta = Some(m);
            }
            Some(v1::export_chunk::Part::Data(d)) => {
                assert!(d.len() <= cauda_proto::MAX_CHUNK_BYTES);
                bytes.extend(d);
            }
            None => {}
        }
    }
    let meta = meta.expect("a meta chunk");
    assert_eq!(meta.total_bytes, bytes.len() as u64);
    assert_eq!(meta.sha256, caudad::store::sha256_hex(&bytes));
    Ok((meta, bytes))
}

async fn latest_checkpoint(client: &mut CaudaClient<Channel>, run_id: u64) -> Checkpoint {
    let mut stream = client
        .get_checkpoint(v1::GetCheckpointRequest {
            run_id,
            ..Default::default()
        })
        .await
        .expect("get checkpoint")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        if let Some(v1::checkpoint_chunk::Part::Data(d)) = chunk.part {
            bytes.extend(d);
        }
    }
    Checkpoint::from_bytes(&bytes).expect("a checkpoint")
}

/// The tensor names in a safetensors header (8-byte LE length, then JSON).
fn safetensors_names(bytes: &[u8]) -> Vec<String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    names.sort();
    names
}

/// Runs bench/export_check.py; `None` (after `require`) when the venv is absent.
fn torch_max_diff(model: &Path, case: &Path) -> Option<f64> {
    let python = torch_python()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/export_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(case)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run export_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    println!("{line}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Some(v["max_abs_diff"].as_f64().expect("max_abs_diff"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_runs_export_as_safetensors_pytorch_loads_and_as_burn_records() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec(
        "export",
        2,
        "[module]\nclassifier = { name = \"cosine\", scale = 16.0 }\n\
         [sweep]\n\"model.backbone\" = [\"resnet8\", \"resnet8b\", \"lenet\"]\n",
    );
    let ids = submit_ids(&mut client, &spec).await;
    assert_eq!(ids.len(), 3);
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        let resolved = ResolvedRun::from_json("test", &run.config_json).unwrap();
        let (meta, st) = export(&mut client, run.run_id, v1::ExportFormat::Safetensors, None)
            .await
            .expect("export safetensors");
        assert_eq!((meta.run_id, meta.epoch), (run.run_id, 2));
        assert_eq!(meta.format(), v1::ExportFormat::Safetensors);
        let names = safetensors_names(&st);
        assert!(names.contains(&"head.weight".to_string()), "{names:?}");
        assert!(
            !names.contains(&"head.bias".to_string()),
            "cosine head: {names:?}"
        );
        // Option B's projection is `shortcut.{0,1}`; option A's shortcut has no tensors.
        if resolved.model.backbone == "resnet8b" {
            assert!(names.contains(&"backbone.blocks.1.shortcut.1.running_var".into()));
        }
        if resolved.model.backbone == "resnet8" {
            assert!(!names.iter().any(|n| n.contains("shortcut")), "{names:?}");
        }

        let ck = latest_checkpoint(&mut client, run.run_id).await;
        let (_, burn) = export(&mut client, run.run_id, v1::ExportFormat::Burn, Some(1))
            .await
            .expect("export burn");
        assert!(!burn.is_empty());
        let (_, burn_latest) = export(&mut client, run.run_id, v1::ExportFormat::Burn, None)
            .await
            .expect("export burn");
        assert_eq!(
            burn_latest, ck.model,
            "burn export is the checkpoint's model part"
        );

        let model = rebuild(&resolved, &ck, &Device::default()).unwrap();
        let data = train::prepare(&resolved.data).unwrap();
        let case = case_from_images(&model, &data.test.head(64).unwrap(), &data.norm, 64).unwrap();
        let model_path = dir.path().join(format!("r{}.safetensors", run.run_id));
        let case_path = dir.path().join(format!("r{}.json", run.run_id));
        std::fs::write(&model_path, &st).unwrap();
        std::fs::write(&case_path, serde_json::to_vec(&case).unwrap()).unwrap();
        if let Some(diff) = torch_max_diff(&model_path, &case_path) {
            assert!(diff < 1e-4, "{}: max |logit difference| {diff}", run.name);
        }
    }

    let code = |r: Result<(v1::ExportMeta, Vec<u8>), tonic::Status>| r.unwrap_err().code();
    let st = v1::ExportFormat::Safetensors;
    assert_eq!(
        code(export(&mut client, 999, st, None).await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(export(&mut client, ids[0], st, Some(99)).await),
        tonic::Code::NotFound
    );
    let unspecified = v1::ExportFormat::Unspecified;
    assert_eq!(
        code(export(&mut client, ids[0], unspecified, None).await),
        tonic::Code::InvalidArgument
    );
}
