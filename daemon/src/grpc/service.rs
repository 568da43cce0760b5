//! The `Cauda` service as adapters over the core: validate the request, convert, call the
//! daemon (off the runtime's workers, `blocking`), convert back. No scheduling logic here.

use std::pin::Pin;
use std::sync::Arc;

use cauda_proto::v1::cauda_server::Cauda;
use cauda_proto::v1::{self, cancel_run_request::Target};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, instrument};

use super::blocking;
use super::{convert, engine_wire};
use crate::core::{CancelTarget, CheckpointChoice, Daemon};
use crate::model::{ExperimentId, RunId, RunState};
use crate::store::RunFilter;

/// Runs per ListRuns page when the request says 0, and the most a page may hold.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The `Cauda` gRPC service over a shared daemon core.
#[derive(Debug, Clone)]
pub struct CaudaService {
    daemon: Arc<Daemon>,
}

impl CaudaService {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

/// The last stored epoch of a run (0 when none or unreadable: a listing still shows the run).
fn epochs_done(daemon: &Daemon, id: RunId) -> u32 {
    daemon.epochs_done(id).unwrap_or(0)
}

#[tonic::async_trait]
impl Cauda for CaudaService {
    #[instrument(skip_all, fields(user))]
    async fn submit_experiment(
        &self,
        request: Request<v1::SubmitExperimentRequest>,
    ) -> Result<Response<v1::SubmitExperimentResponse>, Status> {
        let user = super::auth::submitter(&request, request.get_ref().user.as_deref())?;
        let req = request.into_inner();
        let origin = req.source_name.as_deref().unwrap_or("spec");
        let origin = origin.to_string();
        if req.validate_only {
            let names = blocking::core(&self.daemon, move |d| {
                Ok(d.validate(&origin, &req.spec_toml)?)
            })
            .await?;
            let runs = names
                .into_iter()
                .map(|name| v1::SubmittedRun {
                    run_id: 0,
                    name,
                    reused: false,
                })
                .collect();
            return Ok(Response::new(v1::SubmitExperimentResponse {
                experiment_id: 0,
                runs,
            }));
        }
        tracing::Span::current().record("user", &user);
        let submitted = blocking::core(&self.daemon, move |d| {
            Ok(d.submit(&origin, &req.spec_toml, &user, req.priority)?)
        })
        .await?;
        Ok(Response::new(v1::SubmitExperimentResponse {
            experiment_id: submitted.experiment.0,
            runs: submitted
                .runs
                .into_iter()
                .map(|(id, name)| v1::SubmittedRun {
                    run_id: id.0,
                    name,
                    reused: false,
                })
                .chain(
                    submitted
                        .reused
                        .into_iter()
                        .map(|(id, name)| v1::SubmittedRun {
                            run_id: id.0,
                            name,
                            reused: true,
                        }),
                )
                .collect(),
        }))
    }

    #[instrument(skip_all, fields(experiment_id = request.get_ref().experiment_id))]
    async fn get_experiment(
        &self,
        request: Request<v1::GetExperimentRequest>,
    ) -> Result<Response<v1::GetExperimentResponse>, Status> {
        let id = ExperimentId(request.get_ref().experiment_id);
        let (exp, runs) = blocking::core(&self.daemon, move |d| Ok(d.get_experiment(id)?)).await?;
        let mut counts = v1::RunStateCounts::default();
        for r in &runs {
            match r.state {
                RunState::Queued => counts.queued += 1,
                RunState::Running => counts.running += 1,
                RunState::Succeeded => counts.succeeded += 1,
                RunState::Failed => counts.failed += 1,
                RunState::Cancelled => counts.cancelled += 1,
            }
        }
        let briefs = exp
            .runs
            .iter()
            .filter_map(|id| runs.iter().find(|r| r.id == *id))
            .map(|r| v1::RunBrief {
                run_id: r.id.0,
                name: r.name.clone(),
                state: convert::state_to_wire(r.state).into(),
            })
            .collect();
        Ok(Response::new(v1::GetExperimentResponse {
            experiment: Some(v1::Experiment {
                experiment_id: exp.id.0,
                name: exp.name,
                user: exp.user,
                spec_toml: exp.spec_text,
                submitted_at_ms: i64::try_from(exp.submitted_at).unwrap_or(i64::MAX),
                runs: briefs,
                counts: Some(counts),
                point_run_ids: exp.points.iter().map(|p| p.run.0).collect(),
            }),
        }))
    }

    #[instrument(skip_all)]
    async fn list_runs(
        &self,
        request: Request<v1::ListRunsRequest>,
    ) -> Result<Response<v1::ListRunsResponse>, Status> {
        let req = request.into_inner();
        let page = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let id = req
                .page_token
                .parse::<u64>()
                .map_err(|_| Status::invalid_argument("page_token: not a token of ListRuns"))?;
            Some(RunId(id))
        };
        let mut states = Vec::new();
        for s in &req.states {
            let state = v1::RunState::try_from(*s)
                .ok()
                .and_then(convert::state_from_wire)
                .ok_or_else(|| Status::invalid_argument(format!("states: unknown state {s}")))?;
            states.push(state);
        }
        // One state is answered by the store's index; several are filtered here.
        let filter = RunFilter {
            experiment: req.experiment_id.map(ExperimentId),
            state: (states.len() == 1).then(|| states[0]),
            user: req.user.clone(),
            limit: (states.len() <= 1).then_some(page + 1),
            after,
        };
        let full = req.view == v1::RunView::Full as i32;
        let response = blocking::core(&self.daemon, move |d| {
            if full {
                let runs = d.list_runs(&filter)?.into_iter();
                let runs = runs.filter(|r| states.is_empty() || states.contains(&r.state));
                let (runs, next_page_token) = page_of(runs.collect(), page, |r| r.id);
                let runs = runs
                    .iter()
                    .map(|r| convert::run_to_wire(r, true, epochs_done(d, r.id), d.engine()));
                return Ok(v1::ListRunsResponse {
                    runs: runs.collect(),
                    next_page_token,
                });
            }
            // The basic view reads briefs: no config is decoded (`store::brief`).
            let runs = d.list_run_briefs(&filter)?.into_iter();
            let runs = runs.filter(|r| states.is_empty() || states.contains(&r.state));
            let (runs, next_page_token) = page_of(runs.collect(), page, |r| r.id);
            let mut wire = Vec::with_capacity(runs.len());
            for r in runs {
                let epochs = epochs_done(d, r.id);
                let run = if r.facts.is_none() {
                    // Stored before these were recorded at submission: read its config.
                    convert::run_to_wire(&d.get_run(r.id)?, false, epochs, d.engine())
                } else {
                    convert::brief_to_wire(r, epochs, d.engine())
                };
                wire.push(run);
            }
            Ok(v1::ListRunsResponse {
                runs: wire,
                next_page_token,
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id))]
    async fn get_run(
        &self,
        request: Request<v1::GetRunRequest>,
    ) -> Result<Response<v1::GetRunResponse>, Status> {
        let id = RunId(request.get_ref().run_id);
        let run = blocking::core(&self.daemon, move |d| {
            Ok(convert::run_to_wire(
                &d.get_run(id)?,
                true,
                epochs_done(d, id),
                d.engine(),
            ))
        })
        .await?;
        Ok(Response::new(v1::GetRunResponse { run: Some(run) }))
    }

    #[instrument(skip_all, fields(target = ?request.get_ref().target))]
    async fn cancel_run(
        &self,
        request: Request<v1::CancelRunRequest>,
    ) -> Result<Response<v1::CancelRunResponse>, Status> {
        let actor = super::auth::actor(&request);
        let req = request.into_inner();
        let target = match req.target {
            Some(Target::RunId(id)) => CancelTarget::Run(RunId(id)),
            Some(Target::ExperimentId(id)) => CancelTarget::Experiment(ExperimentId(id)),
            None => {
                return Err(Status::invalid_argument(
                    "target: set run_id or experiment_id",
                ));
            }
        };
        let outcome = blocking::core(&self.daemon, move |d| {
            Ok(d.cancel_as(&actor, target, req.reason)?)
        })
        .await?;
        Ok(Response::new(v1::CancelRunResponse {
            cancelled_run_ids: outcome.cancelled.iter().map(|r| r.0).collect(),
            already_finished_run_ids: outcome.already_finished.iter().map(|r| r.0).collect(),
        }))
    }

    type WatchRunStream = BoxStream<v1::RunEvent>;

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id))]
    async fn watch_run(
        &self,
        request: Request<v1::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let stream = super::watch::watch(self.daemon.clone(), request.into_inner())?;
        Ok(Response::new(Box::pin(stream)))
    }

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id))]
    async fn get_metrics(
        &self,
        request: Request<v1::GetMetricsRequest>,
    ) -> Result<Response<v1::GetMetricsResponse>, Status> {
        let id = RunId(request.get_ref().run_id);
        let (points, summary) = blocking::core(&self.daemon, move |d| Ok(d.metrics(id)?)).await?;
        Ok(Response::new(v1::GetMetricsResponse {
            epochs: points
                .iter()
                .map(engine_wire::metric_to_wire)
                .collect::<Result<_, _>>()?,
            summary_json: summary
                .as_deref()
                .map(|s| serde_json::to_string(s).unwrap_or_default())
                .unwrap_or_default(),
            summary: summary.as_deref().map(engine_wire::summary_to_wire),
        }))
    }

    #[instrument(skip_all)]
    async fn list_plugins(
        &self,
        request: Request<v1::ListPluginsRequest>,
    ) -> Result<Response<v1::ListPluginsResponse>, Status> {
        let family = request.into_inner().family;
        let mut plugins: Vec<v1::Plugin> = self
            .daemon
            .plugins()
            .iter()
            .filter(|p| family.is_empty() || convert::family_name(p.family) == family)
            .map(convert::plugin_to_wire)
            .collect();
        plugins.sort_by(|a, b| (&a.family, &a.name).cmp(&(&b.family, &b.name)));
        let mut presets = self.daemon.presets().map_err(Status::from)?;
        presets.sort_by(|a, b| (a.family, &a.name).cmp(&(b.family, &b.name)));
        let methods = presets
            .iter()
            .map(convert::method_to_wire)
            .filter(|m| family.is_empty() || m.family == family || m.subfamily == family)
            .collect();
        let (backends, gpu_backend) = self.daemon.backends();
        Ok(Response::new(v1::ListPluginsResponse {
            plugins,
            methods,
            backends: backends.iter().map(|b| b.name().to_string()).collect(),
            gpu_backend: gpu_backend.name().to_string(),
        }))
    }

    #[instrument(skip_all)]
    async fn list_devices(
        &self,
        _request: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        let mut views = blocking::core(&self.daemon, |d| Ok(d.devices()?)).await?;
        views.sort_by_key(|d| convert::device_order(&d.info.id));
        Ok(Response::new(v1::ListDevicesResponse {
            devices: views.iter().map(convert::device_to_wire).collect(),
        }))
    }

    type GetCheckpointStream = BoxStream<v1::CheckpointChunk>;

    #[instrument(skip_all, fields(experiment_id = request.get_ref().experiment_id))]
    async fn get_report(
        &self,
        request: Request<v1::GetReportRequest>,
    ) -> Result<Response<v1::GetReportResponse>, Status> {
        let id = ExperimentId(request.get_ref().experiment_id);
        let report = blocking::core(&self.daemon, move |d| Ok(d.report(id)?)).await?;
        Ok(Response::new(convert::report_to_wire(&report)))
    }

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id))]
    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<Self::GetCheckpointStream>, Status> {
        let req = request.into_inner();
        let choice = match (req.epoch, req.choice()) {
            (Some(e), _) => CheckpointChoice::Epoch(e),
            (None, v1::CheckpointChoice::Best) => CheckpointChoice::Best,
            (None, v1::CheckpointChoice::Latest | v1::CheckpointChoice::Unspecified) => {
                CheckpointChoice::Latest
            }
        };
        let run = RunId(req.run_id);
        let meta =
            blocking::core(&self.daemon, move |d| Ok(d.checkpoint_meta(run, choice)?)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let daemon = self.daemon.clone();
        let span = tracing::info_span!("checkpoint_stream", run_id = req.run_id);
        tokio::spawn(
            async move {
                let stage = daemon.stage_of(meta.run, meta.epoch);
                let first = v1::CheckpointChunk {
                    part: Some(v1::checkpoint_chunk::Part::Meta(super::meta_to_wire(
                        &meta, stage,
                    ))),
                };
                if tx.send(Ok(first)).await.is_err() {
                    return;
                }
                for index in 0..meta.chunks {
                    let part = daemon
                        .checkpoint_chunk(&meta, index)
                        .map(|data| v1::CheckpointChunk {
                            part: Some(v1::checkpoint_chunk::Part::Data(data)),
                        })
                        .map_err(Status::from);
                    let failed = part.is_err();
                    if tx.send(part).await.is_err() || failed {
                        return;
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ExportRunStream = super::export::ExportStream;

    #[instrument(skip_all, fields(run_id = request.get_ref().run_id))]
    async fn export_run(
        &self,
        request: Request<v1::ExportRunRequest>,
    ) -> Result<Response<Self::ExportRunStream>, Status> {
        super::export::export_run(self.daemon.clone(), request.into_inner())
            .await
            .map(Response::new)
    }

    #[instrument(skip_all)]
    async fn who_am_i(
        &self,
        request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        Ok(Response::new(super::auth::who_am_i(&request)))
    }

    #[instrument(skip_all, fields(target = ?request.get_ref().target))]
    async fn delete_run(
        &self,
        request: Request<v1::DeleteRunRequest>,
    ) -> Result<Response<v1::DeleteRunResponse>, Status> {
        let actor = super::auth::actor(&request);
        let target = match request.into_inner().target {
            Some(v1::delete_run_request::Target::RunId(id)) => CancelTarget::Run(RunId(id)),
            Some(v1::delete_run_request::Target::ExperimentId(id)) => {
                CancelTarget::Experiment(ExperimentId(id))
            }
            None => {
                return Err(Status::invalid_argument(
                    "target: set run_id or experiment_id",
                ));
            }
        };
        let outcome =
            blocking::core(&self.daemon, move |d| Ok(d.delete_as(&actor, target)?)).await?;
        Ok(Response::new(v1::DeleteRunResponse {
            deleted_run_ids: outcome.runs.iter().map(|r| r.0).collect(),
            deleted_experiment_ids: outcome.experiments.iter().map(|e| e.0).collect(),
        }))
    }
}

/// The first `page` of `items` and the token of the next page (empty on the last one): the
/// listing asked for one item more than a page to know whether another page follows.
fn page_of<T>(mut items: Vec<T>, page: usize, id: impl Fn(&T) -> RunId) -> (Vec<T>, String) {
    items.truncate(page + 1);
    if items.len() > page {
        items.truncate(page);
        let token = items
            .last()
            .map(|r| id(r).0.to_string())
            .unwrap_or_default();
        (items, token)
    } else {
        (items, String::new())
    }
}
