//! The `--json` forms of `cauda`'s outputs, for scripts. The generated proto types carry no
//! serde derives, so each message is converted here by hand, with states as lowercase names,
//! ids as numbers and the `*_json` fields embedded as JSON rather than as strings.

use cauda_proto::per_class_from_wire;
use cauda_proto::v1::{Device, EpochMetrics, Grant, Plugin, Run};
use serde_json::{Value, json};

use crate::output::state_name;

/// A `*_json` field as JSON: parsed when it is JSON, null when empty, the text otherwise.
fn embedded(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn grant(g: &Grant) -> Value {
    json!({ "device_id": g.device_id, "share": g.share, "mem_mb": g.mem_mb })
}

/// A run, every field.
pub fn run(run: &Run) -> Value {
    let resources = run
        .resources
        .as_ref()
        .map(|r| json!({ "gpus": r.gpus, "gpu_share": r.gpu_share, "gpu_mem_mb": r.gpu_mem_mb }));
    json!({
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "name": run.name,
        "user": run.user,
        "state": state_name(run.state),
        "priority": run.priority,
        "attempt": run.attempt,
        "max_retries": run.max_retries,
        "resources": resources,
        "grants": run.grants.iter().map(grant).collect::<Vec<_>>(),
        "pending_reason": run.pending_reason,
        "error": run.error,
        "depends_on": run.depends_on,
        "config": embedded(&run.config_json),
        "config_hash": run.config_hash,
        "engine": run.engine,
        "older_engine": run.older_engine,
        "summary": embedded(&run.summary_json),
        "submitted_at_ms": run.submitted_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "epochs_done": run.epochs_done,
        "epochs_total": run.epochs_total,
        "gpu_mem_source": run.gpu_mem_source,
        "peak_gpu_mem_mb": run.peak_gpu_mem_mb,
        "oom_requeued": run.oom_requeued,
        "slurm_job_id": run.slurm_job_id,
        "slurm_job_state": run.slurm_job_state,
        "slurm_job_attempt": run.slurm_job_attempt,
    })
}

/// One epoch's metrics; a class without test images has a null per-class accuracy.
pub fn epoch(e: &EpochMetrics) -> Value {
    let eval = e.eval.as_ref().map(|v| {
        json!({
            "test_top1": v.test_top1,
            "many": v.many,
            "medium": v.medium,
            "few": v.few,
            "val_top1": v.val_top1,
            "per_class": per_class_from_wire(&v.per_class),
        })
    });
    json!({
        "stage": e.stage,
        "epoch": e.epoch,
        "attempt": e.attempt,
        "train_loss": e.train_loss,
        "lr": e.lr,
        "images_per_sec": e.images_per_sec,
        "eval": eval,
    })
}

/// A run's metrics: its epochs and its summary (null before it succeeded).
pub fn metrics(epochs: &[EpochMetrics], summary_json: &str) -> Value {
    json!({
        "epochs": epochs.iter().map(epoch).collect::<Vec<_>>(),
        "summary": embedded(summary_json),
    })
}

/// A plugin and its parameters.
pub fn plugin(p: &Plugin) -> Value {
    let params: Vec<Value> = p
        .params
        .iter()
        .map(|q| {
            json!({
                "name": q.name,
                "kind": match q.kind { 1 => "float", 2 => "int", _ => "unspecified" },
                "default": q.default,
                "min": q.min,
                "max": q.max,
                "doc": q.doc,
            })
        })
        .collect();
    json!({ "name": p.name, "family": p.family, "doc": p.doc, "paper": p.paper, "params": params })
}

/// A device and the runs on it.
pub fn device(d: &Device) -> Value {
    let runs: Vec<Value> = d
        .runs
        .iter()
        .map(
            |r| json!({ "run_id": r.run_id, "name": r.name, "share": r.share, "mem_mb": r.mem_mb }),
        )
        .collect();
    json!({
        "device_id": d.device_id,
        "kind": match d.kind { 1 => "cpu", 2 => "gpu", _ => "unspecified" },
        "name": d.name,
        "memory_total_mb": d.memory_total_mb,
        "memory_used_mb": d.memory_used_mb,
        "memory_free_mb": d.memory_free_mb,
        "memory_reserved_mb": d.memory_reserved_mb,
        "utilization": d.utilization,
        "from_override": d.from_override,
        "free_share": d.free_share,
        "runs": runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauda_proto::v1::EvalMetrics;

    #[test]
    fn runs_embed_their_json_fields_and_name_their_state() {
        let r = Run {
            run_id: 5,
            state: 3,
            config_json: r#"{"lr":0.1}"#.into(),
            ..Default::default()
        };
        let v = run(&r);
        assert_eq!(v["state"], "succeeded");
        assert_eq!(v["config"]["lr"], 0.1);
        assert_eq!(v["summary"], Value::Null);
    }

    #[test]
    fn missing_per_class_accuracies_are_null() {
        let e = EpochMetrics {
            eval: Some(EvalMetrics {
                per_class: vec![0.5, f32::NAN],
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = epoch(&e);
        assert_eq!(v["eval"]["per_class"], json!([0.5, null]));
        assert_eq!(v["eval"]["many"], Value::Null);
    }

    #[test]
    fn a_gpu_names_its_kind_model_and_memory() {
        let d = Device {
            device_id: "gpu:0".into(),
            kind: 2,
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_total_mb: Some(81559),
            memory_used_mb: Some(1024),
            utilization: Some(0.5),
            ..Default::default()
        };
        let v = device(&d);
        assert_eq!(v["kind"], "gpu");
        assert_eq!(v["name"], "NVIDIA H100 80GB HBM3");
        assert_eq!(
            (v["memory_used_mb"].clone(), v["memory_total_mb"].clone()),
            (json!(1024), json!(81559))
        );
        assert_eq!(v["utilization"], 0.5);
        assert_eq!(v["from_override"], false);
    }
}
