//! How `cauda` shows things to people: aligned tables, one-line summaries of runs and events,
//! and the metrics CSV. Pure functions from proto messages to text, so the formatting is tested
//! without a daemon; the commands only print what these return.

use cauda_proto::v1::{
    AggregatedDistribution, Device, EpochMetrics, Grant, LogLine, LogStream, Plugin, Run, RunState,
    StateChange,
};

use crate::ids::{experiment_label, run_label};

/// The lowercase name of a run state as sent on the wire (`queued`, ...); `unknown(N)` for a
/// value this client does not know.
pub fn state_name(state: i32) -> String {
    match RunState::try_from(state) {
        Ok(RunState::Unspecified) => "unspecified".into(),
        Ok(RunState::Queued) => "queued".into(),
        Ok(RunState::Running) => "running".into(),
        Ok(RunState::Succeeded) => "succeeded".into(),
        Ok(RunState::Failed) => "failed".into(),
        Ok(RunState::Cancelled) => "cancelled".into(),
        Err(_) => format!("unknown({state})"),
    }
}

/// True for SUCCEEDED, FAILED and CANCELLED: states a run never leaves.
pub fn is_terminal(state: i32) -> bool {
    matches!(
        RunState::try_from(state),
        Ok(RunState::Succeeded | RunState::Failed | RunState::Cancelled)
    )
}

/// Devices of a run: `gpu:0, gpu:1` for whole devices, `gpu:0 (0.25, 4096 MiB)` for shares;
/// `-` when it holds none.
pub fn grants_text(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "-".into();
    }
    grants
        .iter()
        .map(|g| {
            let mut extra = Vec::new();
            if g.share < 1.0 {
                extra.push(format!("{}", g.share));
            }
            if let Some(mb) = g.mem_mb {
                extra.push(format!("{mb} MiB"));
            }
            if extra.is_empty() {
                g.device_id.clone()
            } else {
                format!("{} ({})", g.device_id, extra.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column headers of `cauda ls`.
pub const RUN_HEADERS: [&str; 6] = ["ID", "NAME", "STATE", "ATTEMPT", "DEVICES", "REASON/ERROR"];

/// One row of `cauda ls`: id, name, state, attempt, devices, and the pending reason of a
/// queued run or the error of a failed one.
pub fn run_row(run: &Run) -> Vec<String> {
    let note = run
        .pending_reason
        .as_deref()
        .or(run.error.as_deref())
        .map(crate::exit::one_line)
        .unwrap_or_else(|| "-".into());
    vec![
        run_label(run.run_id),
        run.name.clone(),
        state_name(run.state),
        run.attempt.to_string(),
        grants_text(&run.grants),
        note,
    ]
}

/// Left-aligned columns separated by two spaces, the one table of every listing (the report's).
pub use cauda_report::aligned as table;

/// `cauda show`: every field a person needs, one `key: value` per line.
pub fn run_details(run: &Run) -> String {
    let mut lines = vec![
        format!("run:          {}", run_label(run.run_id)),
        format!("name:         {}", run.name),
        format!("experiment:   {}", experiment_label(run.experiment_id)),
        format!("user:         {}", run.user),
        format!("state:        {}", state_name(run.state)),
        format!(
            "attempt:      {} (max retries {})",
            run.attempt, run.max_retries
        ),
        format!("priority:     {}", run.priority),
        format!("epochs:       {}/{}", run.epochs_done, run.epochs_total),
        format!("devices:      {}", grants_text(&run.grants)),
    ];
    if let Some(res) = &run.resources {
        let mut asks = match res.gpu_share {
            Some(share) if res.gpus == 0 => format!("{share} of a GPU"),
            _ if res.gpus == 0 => "a CPU slot".to_string(),
            _ => format!("{} GPU(s)", res.gpus),
        };
        if let Some(mb) = res.gpu_mem_mb {
            asks.push_str(&format!(", {mb} MiB"));
        }
        lines.push(format!("resources:    {asks}"));
    }
    if let Some(source) = &run.gpu_mem_source {
        lines.push(format!("gpu memory:   {source}"));
    }
    if let Some(peak) = run.peak_gpu_mem_mb {
        lines.push(format!(
            "peak memory:  {peak} MiB (measured in the first epoch of an attempt)"
        ));
    }
    if run.oom_requeued {
        lines.push(
            "out of memory: requeued once with a larger reservation (a second time fails it)"
                .to_string(),
        );
    }
    if let Some(reason) = &run.pending_reason {
        lines.push(format!("pending:      {}", crate::exit::one_line(reason)));
    }
    if let Some(job) = run.slurm_job_id {
        let state = run.slurm_job_state.as_deref().unwrap_or("");
        lines.push(format!(
            "slurm job:    {job} (attempt {}) {state}",
            run.slurm_job_attempt.unwrap_or(run.attempt)
        ));
    }
    if let Some(error) = &run.error {
        lines.push(format!("error:        {error}"));
    }
    if let Some(dep) = run.depends_on {
        lines.push(format!("depends on:   {}", run_label(dep)));
    }
    lines.push(format!("config hash:  {}", run.config_hash));
    lines.push(format!(
        "engine:       {}",
        engine_text(&run.engine, run.older_engine)
    ));
    if let Some(summary) = &run.summary {
        lines.extend(aggregation_lines(&summary.test_time_aggregation));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// SADE's test-time aggregation of a run's experts, one line per shifted test set: the learned
/// weights, top-1 with them and with the experts' mean; nothing for a run without it.
fn aggregation_lines(sets: &[AggregatedDistribution]) -> Vec<String> {
    if sets.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![
        "test-time aggregation (SADE): experts' weights learned on each shifted test set, top-1 \
         with them / with the experts' mean"
            .to_string(),
    ];
    for a in sets {
        let weights: Vec<String> = a.weights.iter().map(|w| format!("{w:.2}")).collect();
        lines.push(format!(
            "  {:<12} {}  {:.1}% / {:.1}%  ({} images, {} epochs)",
            a.distribution,
            weights.join(" "),
            a.top1 * 100.0,
            a.mean_top1 * 100.0,
            a.images,
            a.epochs
        ));
    }
    lines
}

/// An engine fingerprint in words, `(older)` when it is not the daemon's: such a run is never
/// reused, and its numbers may differ from a rerun today.
pub fn engine_text(engine: &str, older: bool) -> String {
    let name = if engine.is_empty() {
        "before fingerprints"
    } else {
        engine
    };
    if older {
        format!("{name} (older than the daemon's engine)")
    } else {
        name.to_string()
    }
}

/// A state change as one line: `queued -> running on gpu:0 (reason)`.
pub fn state_change_text(change: &StateChange) -> String {
    let mut text = format!("{} -> {}", state_name(change.from), state_name(change.to));
    if !change.grants.is_empty() {
        text.push_str(&format!(" on {}", grants_text(&change.grants)));
    }
    if let Some(reason) = &change.reason {
        text.push_str(&format!(": {}", crate::exit::one_line(reason)));
    }
    text
}

/// A log line as printed by `cauda logs`: the line itself, prefixed `[caudad]` when the daemon
/// wrote it.
pub fn log_line_text(line: &LogLine) -> String {
    match LogStream::try_from(line.stream) {
        Ok(LogStream::Daemon) => format!("[caudad] {}", line.line),
        _ => line.line.clone(),
    }
}

/// The progress message of one epoch: `stage 1 loss 0.5321 top1 0.8120`.
pub fn epoch_text(epoch: &EpochMetrics) -> String {
    let mut text = format!("stage {} loss {:.4}", epoch.stage, epoch.train_loss);
    if let Some(eval) = &epoch.eval {
        text.push_str(&format!(" top1 {:.4}", eval.test_top1));
        for (name, value) in [
            ("many", eval.many),
            ("medium", eval.medium),
            ("few", eval.few),
        ] {
            if let Some(v) = value {
                text.push_str(&format!(" {name} {v:.4}"));
            }
        }
    }
    text
}

/// Header of `cauda metrics --format csv`.
pub const METRICS_CSV_HEADER: &str =
    "stage,epoch,train_loss,lr,images_per_sec,test_top1,many,medium,few,val_top1";

/// One CSV row of an epoch; a value the epoch lacks (no evaluation, an empty shot group) is an
/// empty field.
pub fn metrics_csv_row(epoch: &EpochMetrics) -> String {
    let opt = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
    let eval = epoch.eval.as_ref();
    [
        epoch.stage.to_string(),
        epoch.epoch.to_string(),
        epoch.train_loss.to_string(),
        epoch.lr.to_string(),
        epoch.images_per_sec.to_string(),
        opt(eval.map(|e| e.test_top1)),
        opt(eval.and_then(|e| e.many)),
        opt(eval.and_then(|e| e.medium)),
        opt(eval.and_then(|e| e.few)),
        opt(eval.and_then(|e| e.val_top1)),
    ]
    .join(",")
}

/// Column headers of `cauda plugins`.
pub const PLUGIN_HEADERS: [&str; 4] = ["FAMILY", "NAME", "PARAMS", "PAPER"];

/// One row of `cauda plugins`: parameters as `name=default`.
pub fn plugin_row(plugin: &Plugin) -> Vec<String> {
    let params = plugin
        .params
        .iter()
        .map(|p| format!("{}={}", p.name, p.default))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        plugin.family.clone(),
        plugin.name.clone(),
        if params.is_empty() {
            "-".into()
        } else {
            params
        },
        if plugin.paper.is_empty() {
            "-".into()
        } else {
            plugin.paper.clone()
        },
    ]
}

/// Column headers of the methods table of `cauda plugins`.
pub const METHOD_HEADERS: [&str; 4] = ["FAMILY", "SUB-FAMILY", "METHOD", "PAPER"];

/// One row of the methods table: where the method sits in the survey's taxonomy.
pub fn method_row(m: &cauda_proto::v1::Method) -> Vec<String> {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        or_dash(&m.family),
        or_dash(&m.subfamily),
        m.name.clone(),
        or_dash(&m.paper),
    ]
}

/// Column headers of `cauda devices`.
pub const DEVICE_HEADERS: [&str; 7] = ["ID", "NAME", "MEMORY", "RESERVED", "UTIL", "FREE", "RUNS"];

/// One row of `cauda devices`: memory as `used/total MiB` (and NVML's free memory when
/// measured), the memory the runs on it reserve, utilization and free share in percent, the
/// runs placed on it with their share and reserved memory.
pub fn device_row(device: &Device) -> Vec<String> {
    let memory = match (device.memory_used_mb, device.memory_total_mb) {
        (Some(used), Some(total)) => format!("{used}/{total} MiB"),
        (None, Some(total)) => format!("?/{total} MiB"),
        (Some(used), None) => format!("{used} MiB used"),
        (None, None) => "-".into(),
    };
    let memory = match device.memory_free_mb {
        Some(free) if memory != "-" => format!("{memory}, {free} free"),
        _ => memory,
    };
    let reserved = device
        .memory_reserved_mb
        .map(|mb| format!("{mb} MiB"))
        .unwrap_or_else(|| "-".into());
    let util = device
        .utilization
        .map(|u| format!("{:.0}%", u * 100.0))
        .unwrap_or_else(|| "-".into());
    let runs = if device.runs.is_empty() {
        "-".into()
    } else {
        device
            .runs
            .iter()
            .map(|r| match r.mem_mb {
                Some(mb) => format!("{} ({}, {mb} MiB)", run_label(r.run_id), r.share),
                None => format!("{} ({})", run_label(r.run_id), r.share),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut name = device.name.clone();
    if device.from_override {
        name.push_str(" [override]");
    }
    vec![
        device.device_id.clone(),
        name,
        memory,
        reserved,
        util,
        format!("{:.0}%", device.free_share * 100.0),
        runs,
    ]
}

#[cfg(test)]
#[path = "output_test.rs"]
mod tests;
