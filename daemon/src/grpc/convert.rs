//! The one place where the core's types meet protobuf: domain -> wire conversions and the one
//! exhaustive mapping of `CoreError` to `tonic::Status` (no catch-all arm, so a new error
//! variant must be given a code here).

use cauda_plugins::registry::{Family, ParamKind, PluginInfo};
use cauda_proto::v1;
use tonic::Status;

use super::engine_wire::{
    config_facts, coordinate_into_wire, coordinate_to_wire, metric_to_wire, summary_to_wire,
};
use crate::core::{CoreError, DeviceView};
use crate::engine::Engine;
use crate::model::{DeviceId, Grant, ResourceRequest, RunFacts, RunRecord, RunState};
use crate::scheduler::DeviceKind;
use crate::store::{Event, EventKind, LogStream, MetricPoint, RunBrief, StoreError};

impl From<CoreError> for Status {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::InvalidSpec { key, reason, line } => {
                cauda_proto::spec_error_status(&v1::SpecError { key, reason, line })
            }
            CoreError::RunNotFound(_)
            | CoreError::ExperimentNotFound(_)
            | CoreError::CheckpointNotFound { .. } => Status::not_found(err.to_string()),
            CoreError::Store(ref store) => match store {
                StoreError::NotFound { .. } => Status::not_found(err.to_string()),
                StoreError::Invalid { .. } => Status::invalid_argument(err.to_string()),
                StoreError::DiskFull { .. } => Status::resource_exhausted(err.to_string()),
                StoreError::Sled { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Encode { .. }
                | StoreError::EncodeEpoch { .. }
                | StoreError::Poisoned { .. } => Status::internal(err.to_string()),
            },
            CoreError::StaleAttempt { .. } => Status::failed_precondition(err.to_string()),
            CoreError::BadReport { .. } => Status::invalid_argument(err.to_string()),
            CoreError::CorruptUpload { .. } => Status::data_loss(err.to_string()),
            CoreError::NotOwner { .. } | CoreError::ExperimentNotOwned { .. } => {
                Status::permission_denied(err.to_string())
            }
            CoreError::NotDeletable { .. } => Status::failed_precondition(err.to_string()),
            CoreError::QuotaExceeded { .. } => Status::resource_exhausted(err.to_string()),
            CoreError::Forbidden { .. } => Status::permission_denied(err.to_string()),
            CoreError::Internal(_) => Status::internal(err.to_string()),
        }
    }
}

/// Domain state -> wire state.
pub fn state_to_wire(state: RunState) -> v1::RunState {
    match state {
        RunState::Queued => v1::RunState::Queued,
        RunState::Running => v1::RunState::Running,
        RunState::Succeeded => v1::RunState::Succeeded,
        RunState::Failed => v1::RunState::Failed,
        RunState::Cancelled => v1::RunState::Cancelled,
    }
}

/// Wire state -> domain state; `None` for UNSPECIFIED.
pub fn state_from_wire(state: v1::RunState) -> Option<RunState> {
    match state {
        v1::RunState::Unspecified => None,
        v1::RunState::Queued => Some(RunState::Queued),
        v1::RunState::Running => Some(RunState::Running),
        v1::RunState::Succeeded => Some(RunState::Succeeded),
        v1::RunState::Failed => Some(RunState::Failed),
        v1::RunState::Cancelled => Some(RunState::Cancelled),
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub fn grant_to_wire(g: &Grant) -> v1::Grant {
    v1::Grant {
        device_id: g.device.to_string(),
        share: g.share,
        mem_mb: g.mem_mb,
    }
}

fn request_to_wire(r: &ResourceRequest) -> v1::ResourceRequest {
    v1::ResourceRequest {
        gpus: r.gpus,
        gpu_share: r.gpu_share,
        gpu_mem_mb: r.gpu_mem_mb,
    }
}

/// A run on the wire; `full` includes its config and summary.
pub fn run_to_wire(r: &RunRecord, full: bool, epochs_done: u32, engine: &Engine) -> v1::Run {
    let mut wire = brief_to_wire(RunBrief::of(r), epochs_done, engine);
    if r.facts.is_none() {
        // A run stored before its facts were recorded at submission: read its config.
        set_facts(&mut wire, &config_facts(&r.config_json, engine.registry()));
    }
    if full {
        wire.config_json.clone_from(&r.config_json);
        if let Some(summary) = r.summary.as_deref() {
            wire.summary_json = serde_json::to_string(summary).unwrap_or_default();
            wire.summary = Some(summary_to_wire(summary));
        }
    }
    wire
}

/// The typed facts of a run's config on the wire.
fn set_facts(wire: &mut v1::Run, facts: &RunFacts) {
    wire.method.clone_from(&facts.method);
    wire.imbalance_ratio = facts.imbalance_ratio;
    wire.seed = facts.seed;
    wire.balanced_reference = facts.balanced_reference;
    wire.epochs_total = facts.epochs_total;
}

/// A run's basic view (no config or summary) from its brief. A run stored before its facts
/// were recorded shows none; `run_to_wire` reads them from the config.
pub fn brief_to_wire(r: RunBrief, epochs_done: u32, engine: &Engine) -> v1::Run {
    // Taken by value: a listing moves each brief's strings onto the wire instead of copying.
    // The state is polled while the run runs; once it ended, the last poll is stale.
    let slurm_job_state = r
        .batch_job
        .as_ref()
        .filter(|_| !r.state.is_terminal())
        .map(|j| match &j.reason {
            Some(reason) => format!("{} ({reason})", j.state),
            None => j.state.clone(),
        });
    let older_engine = !engine.trains(&r.engine);
    let mut wire = v1::Run {
        run_id: r.id.0,
        experiment_id: r.experiment.0,
        name: r.name,
        user: r.user,
        state: state_to_wire(r.state).into(),
        priority: r.priority,
        attempt: r.attempt,
        max_retries: r.max_retries,
        resources: Some(request_to_wire(&r.request)),
        grants: r.grants.iter().map(grant_to_wire).collect(),
        pending_reason: r.pending_reason,
        error: r.error,
        depends_on: r.depends_on.map(|d| d.0),
        config_json: String::new(),
        config_hash: r.config_hash,
        summary_json: String::new(),
        summary: None,
        method: String::new(),
        imbalance_ratio: None,
        seed: 0,
        balanced_reference: false,
        coordinates: r
            .coordinates
            .into_iter()
            .map(coordinate_into_wire)
            .collect(),
        submitted_at_ms: millis(r.submitted_at),
        started_at_ms: r.started_at.map(millis),
        finished_at_ms: r.finished_at.map(millis),
        epochs_done,
        epochs_total: 0,
        engine: r.engine,
        older_engine,
        gpu_mem_source: r.gpu_memory.source,
        peak_gpu_mem_mb: r.gpu_memory.peak_mb,
        oom_requeued: r.gpu_memory.oom_requeued,
        slurm_job_id: r.batch_job.as_ref().map(|j| j.id),
        slurm_job_state,
        slurm_job_attempt: r.batch_job.as_ref().map(|j| j.attempt),
    };
    if let Some(facts) = r.facts {
        wire.method = facts.method;
        wire.imbalance_ratio = facts.imbalance_ratio;
        wire.seed = facts.seed;
        wire.balanced_reference = facts.balanced_reference;
        wire.epochs_total = facts.epochs_total;
    }
    wire
}

/// What a stored event needs from elsewhere to go on the wire: the grants of the run (for a
/// change to RUNNING) and the metrics of an epoch event.
#[derive(Debug, Default)]
pub struct EventContext<'a> {
    pub grants: &'a [Grant],
    pub metric: Option<&'a MetricPoint>,
}

/// A stored event on the wire; `seq` is the store's (from 0), sent as `seq + 1`. `None` for
/// events the wire does not carry (launch and exit records, an epoch without its metrics).
pub fn event_to_wire(
    seq: u64,
    event: &Event,
    attempt: u32,
    ctx: &EventContext<'_>,
) -> Option<v1::RunEvent> {
    let kind = match &event.kind {
        EventKind::State { from, to, reason } => v1::run_event::Event::State(v1::StateChange {
            from: from.map_or(v1::RunState::Unspecified, state_to_wire).into(),
            to: state_to_wire(*to).into(),
            reason: reason.clone(),
            grants: if *to == RunState::Running {
                ctx.grants.iter().map(grant_to_wire).collect()
            } else {
                Vec::new()
            },
        }),
        EventKind::Epoch { .. } => match metric_to_wire(ctx.metric?) {
            Ok(metrics) => v1::run_event::Event::Epoch(metrics),
            Err(status) => {
                tracing::error!(error = %status.message(), "an epoch is not sent");
                return None;
            }
        },
        EventKind::Log { stream, line } => v1::run_event::Event::Log(v1::LogLine {
            stream: match stream {
                LogStream::Stdout => v1::LogStream::Stdout,
                LogStream::Stderr => v1::LogStream::Stderr,
                LogStream::Daemon => v1::LogStream::Daemon,
            }
            .into(),
            line: line.clone(),
            at_ms: millis(event.at),
        }),
        EventKind::Launch { .. } | EventKind::Exit { .. } => return None,
    };
    Some(v1::RunEvent {
        seq: seq + 1,
        at_ms: millis(event.at),
        attempt,
        event: Some(kind),
    })
}

/// Whether an event puts its run into a terminal state (a watch ends after it).
pub fn is_terminal_event(event: &Event) -> bool {
    matches!(&event.kind, EventKind::State { to, .. } if to.is_terminal())
}

/// A device on the wire: the model as its name when discovery knows it (`cpu` for CPU slots,
/// `gpu` for an override's GPUs), its total memory (discovered or declared with `@MiB`) and
/// live memory in use and utilization when measured.
pub fn device_to_wire(d: &DeviceView) -> v1::Device {
    let (kind, name) = match d.info.kind {
        DeviceKind::Cpu => (v1::DeviceKind::Cpu, "cpu"),
        DeviceKind::Gpu => (
            v1::DeviceKind::Gpu,
            d.info.model.as_deref().unwrap_or("gpu"),
        ),
    };
    v1::Device {
        device_id: d.info.id.to_string(),
        kind: kind.into(),
        name: name.to_string(),
        memory_total_mb: d.info.mem_mb,
        memory_used_mb: d.stats.map(|s| s.memory_used_mb),
        utilization: d
            .stats
            .and_then(|s| s.utilization_pct)
            .map(|pct| pct.min(100) as f32 / 100.0),
        from_override: d.from_override,
        runs: d
            .runs
            .iter()
            .map(|p| v1::DeviceRun {
                run_id: p.run.0,
                name: p.name.clone(),
                share: p.grant.share,
                mem_mb: p.grant.mem_mb,
            })
            .collect(),
        free_share: d.free_share,
        memory_free_mb: d.stats.map(|s| s.memory_free_mb),
        memory_reserved_mb: d.reserved_mb(),
    }
}

/// Ordering key of devices on the wire: CPU first, then index.
pub fn device_order(id: &DeviceId) -> (u8, u32) {
    match id {
        DeviceId::Cpu(i) => (0, *i),
        DeviceId::Gpu(i) => (1, *i),
    }
}

pub fn family_name(f: Family) -> &'static str {
    match f {
        Family::Sampler => "sampler",
        Family::Loss => "loss",
        Family::Rebalance => "rebalance",
        Family::Augment => "augment",
        Family::Module => "module",
    }
}

pub fn plugin_to_wire(p: &PluginInfo) -> v1::Plugin {
    v1::Plugin {
        name: p.name.to_string(),
        family: family_name(p.family).to_string(),
        doc: p.doc.to_string(),
        paper: p.paper.to_string(),
        params: p
            .params
            .iter()
            .map(|s| v1::PluginParam {
                name: s.name.to_string(),
                kind: match s.kind {
                    ParamKind::Float => v1::ParamKind::Float,
                    ParamKind::Int => v1::ParamKind::Int,
                }
                .into(),
                default: s.default,
                min: s.min,
                max: s.max,
                doc: s.doc.to_string(),
            })
            .collect(),
    }
}

/// A method preset on the wire, with its place in the survey's taxonomy.
pub fn method_to_wire(p: &cauda_plugins::spec::Preset) -> v1::Method {
    v1::Method {
        name: p.name.clone(),
        doc: p.doc.clone(),
        paper: p.paper.clone(),
        family: p.family.map(|f| f.family().to_string()).unwrap_or_default(),
        subfamily: p.family.map(|f| f.name().to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "convert_test.rs"]
mod tests;

/// A report on the wire.
pub fn report_to_wire(r: &crate::core::Report) -> v1::GetReportResponse {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    v1::GetReportResponse {
        experiment_id: r.experiment.0,
        name: r.name.clone(),
        rows: r
            .rows
            .iter()
            .map(|row| {
                let [
                    forward_50,
                    forward_25,
                    forward_10,
                    forward_5,
                    forward_2,
                    uniform,
                    backward_2,
                    backward_5,
                    backward_10,
                    backward_25,
                    backward_50,
                ] = row.test_agnostic;
                v1::ReportRow {
                    label: row.label.clone(),
                    coordinates: row.coordinates.iter().map(coordinate_to_wire).collect(),
                    method: row.method.clone(),
                    ratio: row.ratio,
                    runs: count(row.runs),
                    succeeded: count(row.succeeded),
                    failed: count(row.failed),
                    seeds: count(row.seeds),
                    top1_mean: row.top1_mean,
                    top1_std: row.top1_std,
                    top5_mean: row.top5_mean,
                    many_std: row.many_std,
                    medium_std: row.medium_std,
                    few_std: row.few_std,
                    worst_class: row.worst_class,
                    ece: row.ece,
                    nll: row.nll,
                    many: row.many,
                    medium: row.medium,
                    few: row.few,
                    val_selected_top1: row.val_selected_top1,
                    best_test_top1: row.best_test_top1,
                    relative_accuracy: row.relative_accuracy,
                    a_t: row.a_t,
                    a_v: row.a_v,
                    a_b: row.a_b,
                    images_per_sec: row.images_per_sec,
                    hours: row.hours,
                    gpu_hours: row.gpu_hours,
                    engines: row.engines.clone(),
                    older_engine: row.older_engine,
                    forward_50,
                    forward_25,
                    forward_10,
                    forward_5,
                    forward_2,
                    uniform,
                    backward_2,
                    backward_5,
                    backward_10,
                    backward_25,
                    backward_50,
                    test_agnostic_aggregated: row.test_agnostic_aggregated,
                }
            })
            .collect(),
        engine: r.engine.clone(),
    }
}
