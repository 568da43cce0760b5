//! The worker's blocking client of the daemon's `Worker` service: its own small tokio runtime,
//! calls retried while the daemon is unreachable (every call is idempotent), a heartbeat task,
//! and fencing: a FAILED_PRECONDITION or NOT_FOUND, or a heartbeat that says stop, ends the
//! worker without writing anything more. Every call carries the attempt's worker token; an
//! `https://` daemon is verified with the CA the executor named.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauda_plugins::train::EpochRecord;
use cauda_proto::Bearer;
use cauda_proto::v1::{self, worker_client::WorkerClient};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::{WorkerArgs, WorkerError};

/// The worker's client: every call carries `authorization: Bearer <worker token>`.
type Client = WorkerClient<InterceptedService<Channel, Bearer>>;

/// The worker's connection to the daemon.
pub struct WorkerRpc {
    runtime: tokio::runtime::Runtime,
    client: Client,
    url: String,
    run: u64,
    attempt: u32,
    patience: Duration,
    /// Why the worker must stop, once known (fenced, or the daemon gone for good).
    stop: Arc<Mutex<Option<WorkerError>>>,
}

impl WorkerRpc {
    pub fn connect(args: &WorkerArgs) -> Result<Self, WorkerError> {
        let unreachable = |reason: String| WorkerError::Unreachable {
            url: args.daemon_url.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("starting the worker's runtime: {e}")))?;
        let endpoint = Endpoint::from_shared(args.daemon_url.clone())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120));
        let endpoint = if args.daemon_url.starts_with("https://") {
            let tls = crate::grpc::tls::client_config(
                args.ca_cert.as_deref(),
                args.tls_server_name.as_deref(),
            )
            .map_err(|e| unreachable(e.to_string()))?;
            endpoint
                .tls_config(tls)
                .map_err(|e| unreachable(e.to_string()))?
        } else {
            endpoint
        };
        let channel = {
            let _enter = runtime.enter();
            endpoint.connect_lazy()
        };
        let bearer = match &args.token {
            Some(token) => Bearer::new(token)
                .map_err(|e| WorkerError::Refused(format!("the worker token is {e}")))?,
            None => Bearer::none(),
        };
        let client = WorkerClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(crate::grpc::MAX_WORKER_MESSAGE_BYTES);
        Ok(Self {
            runtime,
            client,
            url: args.daemon_url.clone(),
            run: args.run,
            attempt: args.attempt,
            patience: args.patience,
            stop: Arc::new(Mutex::new(None)),
        })
    }

    /// Why the worker was told to stop, if it was.
    pub fn take_stop(&self) -> Option<WorkerError> {
        self.stop.lock().ok().and_then(|mut s| s.take())
    }

    fn classify(&self, status: &Status) -> Option<WorkerError> {
        match status.code() {
            Code::FailedPrecondition | Code::NotFound => Some(WorkerError::Stopped {
                run: self.run,
                attempt: self.attempt,
                reason: status.message().to_string(),
            }),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => None,
            _ => Some(WorkerError::Refused(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }

    /// Runs `call` until it succeeds, retrying transport failures for `patience`.
    fn call<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, WorkerError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.runtime.block_on(call(self.client.clone())) {
                Ok(v) => return Ok(v),
                Err(status) => {
                    if let Some(err) = self.classify(&status) {
                        return Err(self.remember(err));
                    }
                    if started.elapsed() > self.patience {
                        return Err(self.remember(WorkerError::Unreachable {
                            url: self.url.clone(),
                            reason: format!("{what}: {}", status.message()),
                        }));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Keeps a copy of `err` as the reason to stop and returns `err` for the caller.
    fn remember(&self, err: WorkerError) -> WorkerError {
        if let Ok(mut stop) = self.stop.lock() {
            stop.get_or_insert(copy_of(&err));
        }
        err
    }

    pub fn register(&self) -> Result<v1::RegisterResponse, WorkerError> {
        let req = v1::RegisterRequest {
            run_id: self.run,
            attempt: self.attempt,
            pid: std::process::id(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        self.call("Register", |mut c| {
            let req = req.clone();
            async move { c.register(req).await.map(tonic::Response::into_inner) }
        })
    }

    /// Heartbeats every `interval` on the runtime's thread. Told to stop, fenced, or unable to
    /// reach the daemon for `patience`, it ends the process: the daemon has given the run's
    /// devices to someone else, so no more work may happen here.
    pub fn start_heartbeat(&self, interval: Duration) {
        let mut client = self.client.clone();
        let (run, attempt, patience) = (self.run, self.attempt, self.patience);
        self.runtime.spawn(async move {
            let mut last_ok = Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                let req = v1::HeartbeatRequest {
                    run_id: run,
                    attempt,
                    epoch: None,
                };
                match client.heartbeat(req).await {
                    Ok(r) if r.get_ref().stop => {
                        eprintln!("r-{run} attempt {attempt}: the daemon says stop; exiting");
                        std::process::exit(3);
                    }
                    Ok(_) => last_ok = Instant::now(),
                    Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {
                        eprintln!("r-{run} attempt {attempt}: {}; exiting", s.message());
                        std::process::exit(3);
                    }
                    Err(s) => {
                        if last_ok.elapsed() > patience {
                            eprintln!(
                                "r-{run} attempt {attempt}: no daemon for {} s ({}); exiting",
                                patience.as_secs(),
                                s.message()
                            );
                            std::process::exit(4);
                        }
                    }
                }
            }
        });
    }

    pub fn fetch_checkpoint(&self) -> Result<Vec<u8>, WorkerError> {
        let req = v1::FetchCheckpointRequest {
            run_id: self.run,
            attempt: self.attempt,
        };
        let (meta, bytes) = self.call("FetchCheckpoint", |mut c| async move {
            let mut stream = c.fetch_checkpoint(req).await?.into_inner();
            let mut meta = None;
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await? {
                match chunk.part {
                    Some(v1::checkpoint_chunk::Part::Meta(m)) => meta = Some(m),
                    Some(v1::checkpoint_chunk::Part::Data(d)) => bytes.extend_from_slice(&d),
                    None => {}
                }
            }
            Ok((meta, bytes))
        })?;
        let meta = meta.ok_or_else(|| {
            WorkerError::Refused("FetchCheckpoint: the stream had no CheckpointMeta".into())
        })?;
        let digest = crate::store::sha256_hex(&bytes);
        if bytes.len() as u64 != meta.total_bytes || digest != meta.sha256 {
            return Err(WorkerError::Refused(format!(
                "FetchCheckpoint: got {} bytes with sha256 {digest}; announced {} bytes with {}",
                bytes.len(),
                meta.total_bytes,
                meta.sha256
            )));
        }
        Ok(bytes)
    }

    /// Reports one epoch, with the attempt's measured peak GPU memory when given (the first
    /// epoch it trains).
    pub fn report_epoch(
        &self,
        record: &EpochRecord,
        peak_gpu_mem_mb: Option<u64>,
    ) -> Result<(), WorkerError> {
        let req = v1::ReportEpochRequest {
            run_id: self.run,
            attempt: self.attempt,
            metrics: Some(crate::grpc::engine_wire::epoch_to_wire(
                record,
                self.attempt,
            )),
            peak_gpu_mem_mb,
        };
        self.call("ReportEpoch", |mut c| {
            let req = req.clone();
            async move { c.report_epoch(req).await.map(|_| ()) }
        })
    }

    pub fn upload_checkpoint(&self, epoch: usize, bytes: &[u8]) -> Result<(), WorkerError> {
        let meta = v1::CheckpointMeta {
            run_id: self.run,
            attempt: self.attempt,
            epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
            stage: 0,
            total_bytes: bytes.len() as u64,
            sha256: crate::store::sha256_hex(bytes),
        };
        self.call("UploadCheckpoint", |mut c| {
            let mut messages = vec![v1::CheckpointChunk {
                part: Some(v1::checkpoint_chunk::Part::Meta(meta.clone())),
            }];
            messages.extend(bytes.chunks(cauda_proto::MAX_CHUNK_BYTES).map(|d| {
                v1::CheckpointChunk {
                    part: Some(v1::checkpoint_chunk::Part::Data(d.to_vec())),
                }
            }));
            async move {
                c.upload_checkpoint(tokio_stream::iter(messages))
                    .await
                    .map(|_| ())
            }
        })
    }

    /// The last call: the outcome, durable at the daemon once this returns.
    pub fn finish(&self, outcome: Result<String, String>) -> Result<(), WorkerError> {
        let outcome = match outcome {
            Ok(summary_json) => {
                v1::finish_request::Outcome::Success(v1::FinishSuccess { summary_json })
            }
            Err(message) => v1::finish_request::Outcome::Failure(v1::FinishFailure {
                oom: crate::core::oom::looks_like_oom(&message),
                message,
            }),
        };
        let req = v1::FinishRequest {
            run_id: self.run,
            attempt: self.attempt,
            outcome: Some(outcome),
        };
        self.call("Finish", |mut c| {
            let req = req.clone();
            async move { c.finish(req).await.map(|_| ()) }
        })
    }
}

/// A copy of `err` for the heartbeat's stop slot (the error types inside are not `Clone`):
/// stopped and unreachable keep their fields; anything else becomes a refusal with its text.
fn copy_of(err: &WorkerError) -> WorkerError {
    match err {
        WorkerError::Stopped {
            run,
            attempt,
            reason,
        } => WorkerError::Stopped {
            run: *run,
            attempt: *attempt,
            reason: reason.clone(),
        },
        WorkerError::Unreachable { url, reason } => WorkerError::Unreachable {
            url: url.clone(),
            reason: reason.clone(),
        },
        // Not `to_string()` for a refusal: that would repeat its prefix.
        WorkerError::Refused(message) => WorkerError::Refused(message.clone()),
        other => WorkerError::Refused(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_refusal_says_so_once() {
        let err = WorkerError::Refused("PermissionDenied: not your run".into());
        assert_eq!(
            copy_of(&err).to_string(),
            "the daemon refused a call: PermissionDenied: not your run"
        );
        let stopped = WorkerError::Stopped {
            run: 7,
            attempt: 2,
            reason: "cancelled".into(),
        };
        assert_eq!(copy_of(&stopped).exit_code(), 3);
    }
}
