//! The internal `Worker` service as thin adapters over the core's attempt API: the worker
//! processes the executor starts call it to register, heartbeat, report epochs, logs and
//! checkpoints, fetch the checkpoint to resume from and finish. Fencing and retries live in
//! `core::attempts`; here are only the wire checks (chunk sizes, totals).

use std::pin::Pin;
use std::sync::Arc;

use cauda_proto::v1::worker_server::Worker;
use cauda_proto::v1::{self, checkpoint_chunk::Part, finish_request::Outcome};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, instrument};

use super::epoch_wire::reported_epoch;
use super::{auth, blocking};
use crate::core::{Daemon, Ending, oom};
use crate::model::RunId;
use crate::store::LogStream;

/// The largest checkpoint a worker may upload (4 GiB).
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
/// Log lines accepted per ReportLog call.
const MAX_LOG_LINES: usize = 1000;
/// Epochs accepted per ReportEpochs call.
const MAX_REPORTED_EPOCHS: usize = 1000;
/// How often workers are told to heartbeat.
pub const HEARTBEAT_INTERVAL_MS: u32 = 1000;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The `Worker` gRPC service over the shared daemon core.
#[derive(Debug, Clone)]
pub struct WorkerService {
    daemon: Arc<Daemon>,
}

impl WorkerService {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

#[tonic::async_trait]
impl Worker for WorkerService {
    #[instrument(skip_all, fields(run_id = request.get_ref().run_id, attempt = request.get_ref().attempt))]
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        let reply = blocking::core(&self.daemon, move |d| {
            let id = RunId(req.run_id);
            let start = d.register_worker(id, req.attempt, req.pid, &req.hostname)?;
            Ok(v1::RegisterResponse {
                config_json: start.config_json,
                config_hash: start.config_hash,
                run_name: start.name,
                resume: start
                    .resume
                    .map(|m| meta_to_wire(&m, d.stage_of(id, m.epoch))),
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                epochs_done: start.epochs_done,
            })
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        let stop = blocking::core(&self.daemon, move |d| {
            Ok(d.heartbeat(RunId(req.run_id), req.attempt)?)
        })
        .await?;
        Ok(Response::new(v1::HeartbeatResponse { stop }))
    }

    async fn report_epoch(
        &self,
        request: Request<v1::ReportEpochRequest>,
    ) -> Result<Response<v1::ReportEpochResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        let metrics = req
            .metrics
            .ok_or_else(|| Status::invalid_argument("ReportEpoch: metrics missing"))?;
        let reported = reported_epoch("ReportEpoch", metrics)?;
        let duplicate = blocking::core(&self.daemon, move |d| {
            let id = RunId(req.run_id);
            let duplicate = d.report_epoch(id, req.attempt, reported)?;
            if let Some(peak) = req.peak_gpu_mem_mb {
                d.record_peak(id, req.attempt, peak)?;
            }
            Ok(duplicate)
        })
        .await?;
        Ok(Response::new(v1::ReportEpochResponse { duplicate }))
    }

    async fn report_epochs(
        &self,
        request: Request<v1::ReportEpochsRequest>,
    ) -> Result<Response<v1::ReportEpochsResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        if req.metrics.len() > MAX_REPORTED_EPOCHS {
            return Err(Status::invalid_argument(format!(
                "ReportEpochs: {} epochs; at most {MAX_REPORTED_EPOCHS} per call",
                req.metrics.len()
            )));
        }
        let epochs = req
            .metrics
            .into_iter()
            .map(|m| reported_epoch("ReportEpochs", m))
            .collect::<Result<Vec<_>, Status>>()?;
        let duplicate = blocking::core(&self.daemon, move |d| {
            let id = RunId(req.run_id);
            let duplicate = d.report_epochs(id, req.attempt, &epochs)?;
            if let Some(peak) = req.peak_gpu_mem_mb {
                d.record_peak(id, req.attempt, peak)?;
            }
            Ok(duplicate)
        })
        .await?;
        Ok(Response::new(v1::ReportEpochsResponse { duplicate }))
    }

    async fn report_log(
        &self,
        request: Request<v1::ReportLogRequest>,
    ) -> Result<Response<v1::ReportLogResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        if req.lines.len() > MAX_LOG_LINES {
            return Err(Status::invalid_argument(format!(
                "ReportLog: {} lines; at most {MAX_LOG_LINES} per call",
                req.lines.len()
            )));
        }
        let lines: Vec<_> = req
            .lines
            .into_iter()
            .map(|l| {
                let stream = match l.stream() {
                    v1::LogStream::Stderr => LogStream::Stderr,
                    v1::LogStream::Daemon => LogStream::Daemon,
                    v1::LogStream::Stdout | v1::LogStream::Unspecified => LogStream::Stdout,
                };
                (stream, l.line)
            })
            .collect();
        blocking::core(&self.daemon, move |d| {
            Ok(d.report_logs(RunId(req.run_id), req.attempt, &lines)?)
        })
        .await?;
        Ok(Response::new(v1::ReportLogResponse {}))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<v1::CheckpointChunk>>,
    ) -> Result<Response<v1::UploadCheckpointResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let mut stream = request.into_inner();
        let meta = match stream.next().await {
            Some(Ok(v1::CheckpointChunk {
                part: Some(Part::Meta(meta)),
            })) => meta,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Status::invalid_argument(
                    "UploadCheckpoint: the first message must be a CheckpointMeta",
                ));
            }
        };
        auth::check_worker(grant, meta.run_id, meta.attempt)?;
        if meta.total_bytes > MAX_CHECKPOINT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "UploadCheckpoint: {} bytes announced; the limit is {MAX_CHECKPOINT_BYTES}",
                meta.total_bytes
            )));
        }
        let capacity = usize::try_from(meta.total_bytes).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        while let Some(chunk) = stream.next().await {
            match chunk?.part {
                Some(Part::Data(data)) => {
                    if data.len() > cauda_proto::MAX_CHUNK_BYTES {
                        return Err(Status::invalid_argument(format!(
                            "UploadCheckpoint: a chunk of {} bytes; at most {} per chunk",
                            data.len(),
                            cauda_proto::MAX_CHUNK_BYTES
                        )));
                    }
                    if (bytes.len() + data.len()) as u64 > meta.total_bytes {
                        return Err(Status::data_loss(format!(
                            "UploadCheckpoint: more than the {} bytes announced",
                            meta.total_bytes
                        )));
                    }
                    bytes.extend_from_slice(&data);
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "UploadCheckpoint: only the first message may be a CheckpointMeta",
                    ));
                }
            }
        }
        if bytes.len() as u64 != meta.total_bytes {
            return Err(Status::data_loss(format!(
                "UploadCheckpoint: {} bytes received, {} announced",
                bytes.len(),
                meta.total_bytes
            )));
        }
        let daemon = self.daemon.clone();
        let span =
            tracing::info_span!("store_checkpoint", run_id = meta.run_id, epoch = meta.epoch);
        let duplicate = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            daemon.store_checkpoint(
                RunId(meta.run_id),
                meta.attempt,
                meta.epoch,
                &meta.sha256,
                &bytes,
            )
        })
        .await
        .map_err(|e| Status::internal(format!("storing the checkpoint: {e}")))??;
        Ok(Response::new(v1::UploadCheckpointResponse { duplicate }))
    }

    type FetchCheckpointStream = BoxStream<v1::CheckpointChunk>;

    async fn fetch_checkpoint(
        &self,
        request: Request<v1::FetchCheckpointRequest>,
    ) -> Result<Response<Self::FetchCheckpointStream>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        let id = RunId(req.run_id);
        let (first, bytes) = blocking::core(&self.daemon, move |d| {
            let (meta, bytes) = d
                .resume_checkpoint(id, req.attempt)?
                .ok_or_else(|| Status::not_found(format!("run {id} has no checkpoint")))?;
            Ok((meta_to_wire(&meta, d.stage_of(id, meta.epoch)), bytes))
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(
            async move {
                let head = v1::CheckpointChunk {
                    part: Some(Part::Meta(first)),
                };
                if tx.send(Ok(head)).await.is_err() {
                    return;
                }
                for data in bytes.chunks(cauda_proto::MAX_CHUNK_BYTES) {
                    let chunk = v1::CheckpointChunk {
                        part: Some(Part::Data(data.to_vec())),
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
            }
            .instrument(tracing::info_span!("fetch_checkpoint", run_id = %id)),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id, attempt = request.get_ref().attempt))]
    async fn finish(
        &self,
        request: Request<v1::FinishRequest>,
    ) -> Result<Response<v1::FinishResponse>, Status> {
        let grant = auth::worker_grant(&request);
        let req = request.into_inner();
        auth::check_worker(grant, req.run_id, req.attempt)?;
        let ending = match req.outcome {
            Some(Outcome::Success(s)) => Ending::Succeeded(Box::new(
                serde_json::from_str(&s.summary_json).map_err(|e| {
                    Status::invalid_argument(format!(
                        "Finish: summary_json is not the engine's RunSummary: {e}"
                    ))
                })?,
            )),
            Some(Outcome::Failure(f)) if f.oom || oom::looks_like_oom(&f.message) => {
                Ending::OutOfMemory(f.message)
            }
            Some(Outcome::Failure(f)) => Ending::Failed(f.message),
            None => return Err(Status::invalid_argument("Finish: outcome missing")),
        };
        blocking::core(&self.daemon, move |d| {
            Ok(d.finish(RunId(req.run_id), req.attempt, ending)?)
        })
        .await?;
        Ok(Response::new(v1::FinishResponse {}))
    }
}

/// A stored checkpoint's description on the wire.
pub fn meta_to_wire(m: &crate::store::CheckpointMeta, stage: u32) -> v1::CheckpointMeta {
    v1::CheckpointMeta {
        run_id: m.run.0,
        attempt: m.attempt,
        epoch: m.epoch,
        stage,
        total_bytes: m.size,
        sha256: m.sha256.clone(),
    }
}
