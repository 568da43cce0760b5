//! Metric ingestion through the worker API: K running runs, each registered as its worker
//! would, report epochs as fast as K concurrent clients can; every reply means the point is
//! stored (flushed) in sled. The record is the engine's own `EpochRecord` with an evaluation of
//! 100 classes, as a CIFAR-100-LT run would send. `floor` measures the same K clients calling an
//! RPC that does nothing (`WhoAmI`): the most unary calls per second client and server can
//! exchange on this machine, whatever the store does.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use cauda_plugins::train::{EpochRecord, EvalRecord};
use cauda_proto::v1;
use caudad::grpc::engine_wire::epoch_to_wire;

use crate::rig::{Rig, register, spec, submit};

/// What one ingestion round measured.
pub struct Ingest {
    pub points: usize,
    pub wall: Duration,
    /// The latency of every ReportEpoch call.
    pub calls: Vec<Duration>,
    /// The size of one reported epoch on the wire (protobuf).
    pub record_bytes: usize,
}

/// A realistic epoch record: train figures and a 100-class evaluation.
pub fn record(epoch: usize) -> EpochRecord {
    let per_class = (0..100)
        .map(|c| Some(0.9 - 0.006 * c as f32 + 0.0001 * (epoch % 1000) as f32))
        .collect();
    EpochRecord {
        stage: 1,
        epoch,
        train_loss: 4.6 / (1.0 + epoch as f32 * 0.1),
        lr: 0.1 * 0.5f64.powi(i32::try_from(epoch / 60).unwrap_or(i32::MAX)),
        images_per_sec: 5123.4,
        eval: Some(EvalRecord {
            test_top1: 0.4123,
            many: Some(0.6812),
            medium: Some(0.4021),
            few: Some(0.1234),
            per_class,
            val_top1: None,
            test_top5: None,
            ece: None,
            nll: None,
            worst_class: None,
            reliability: Vec::new(),
        }),
        extra: Default::default(),
    }
}

/// `k` runs report `points` epochs in all (`points / k` each, at least one), one per
/// `ReportEpoch` call, or `batch` per `ReportEpochs` call when `batch > 1` (a worker with a
/// backlog); `calls` then holds one latency per call.
pub fn ingest(k: usize, points: usize, batch: usize) -> anyhow::Result<Ingest> {
    let (rig, mut launches) = Rig::start(&[&format!("cpu:{k}")])?;
    let runtime = crate::client_runtime()?;
    let per_run = (points / k).max(1);
    let record_bytes = prost::Message::encoded_len(&epoch_to_wire(&record(1), 1));
    let result = runtime.block_on(async {
        let mut cauda = rig.cauda().await?;
        let (_, runs) = submit(&mut cauda, &spec("ingest", 0, Some(0..k))).await?;
        ensure!(runs.len() == k, "the grid gave {} runs", runs.len());
        let started = launches.take(k).await?;
        let mut clients = Vec::with_capacity(k);
        for launch in started {
            let mut worker = rig.worker().await?;
            register(&mut worker, launch).await?;
            clients.push((worker, launch));
        }
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (mut worker, launch) in clients {
            tasks.spawn(async move {
                let mut calls = Vec::with_capacity(per_run);
                let epochs: Vec<usize> = (1..=per_run).collect();
                for chunk in epochs.chunks(batch.max(1)) {
                    let mut metrics = Vec::with_capacity(chunk.len());
                    for &epoch in chunk {
                        // What a real worker sends (`worker::client`).
                        metrics.push(epoch_to_wire(&record(epoch), launch.attempt));
                    }
                    let call = Instant::now();
                    let duplicates = if batch > 1 {
                        let request = v1::ReportEpochsRequest {
                            run_id: launch.run.0,
                            attempt: launch.attempt,
                            metrics,
                            peak_gpu_mem_mb: None,
                        };
                        worker.report_epochs(request).await?.into_inner().duplicate
                    } else {
                        let request = v1::ReportEpochRequest {
                            run_id: launch.run.0,
                            attempt: launch.attempt,
                            metrics: metrics.pop(),
                            peak_gpu_mem_mb: None,
                        };
                        vec![worker.report_epoch(request).await?.into_inner().duplicate]
                    };
                    calls.push(call.elapsed());
                    ensure!(
                        duplicates.len() == chunk.len() && duplicates.iter().all(|d| !d),
                        "epochs {chunk:?} of {}: duplicates {duplicates:?}",
                        launch.run
                    );
                }
                anyhow::Ok(calls)
            });
        }
        let mut calls = Vec::with_capacity(per_run * k);
        while let Some(done) = tasks.join_next().await {
            calls.extend(done.context("a reporting client panicked")??);
        }
        let wall = start.elapsed();
        for run in &runs {
            let stored = cauda
                .get_metrics(v1::GetMetricsRequest { run_id: *run })
                .await?
                .into_inner()
                .epochs
                .len();
            ensure!(
                stored == per_run,
                "r-{run}: {stored} of {per_run} epochs stored"
            );
        }
        anyhow::Ok(Ingest {
            points: per_run * k,
            wall,
            calls,
            record_bytes,
        })
    });
    drop(runtime);
    rig.stop()?;
    result
}

/// `k` clients, each on its own connection, call `WhoAmI` back to back, `calls` in all: the
/// unary gRPC floor of this machine (client and server share its cores, as in `ingest`).
pub fn floor(k: usize, calls: usize) -> anyhow::Result<Ingest> {
    let (rig, _launches) = Rig::start(&["cpu:1"])?;
    let runtime = crate::client_runtime()?;
    let per_client = (calls / k).max(1);
    let result = runtime.block_on(async {
        let mut clients = Vec::with_capacity(k);
        for _ in 0..k {
            clients.push(rig.cauda().await?);
        }
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut client in clients {
            tasks.spawn(async move {
                let mut calls = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let call = Instant::now();
                    client.who_am_i(v1::WhoAmIRequest {}).await?;
                    calls.push(call.elapsed());
                }
                anyhow::Ok(calls)
            });
        }
        let mut calls = Vec::with_capacity(per_client * k);
        while let Some(done) = tasks.join_next().await {
            calls.extend(done.context("a calling client panicked")??);
        }
        anyhow::Ok(Ingest {
            points: per_client * k,
            wall: start.elapsed(),
            calls,
            record_bytes: 0,
        })
    });
    drop(runtime);
    rig.stop()?;
    result
}
