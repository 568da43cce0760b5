//! Unit tests of `output.rs`: table rows, alignment, the metrics CSV with missing values.

use super::*;
use cauda_proto::v1::{DeviceRun, EvalMetrics};

fn run() -> Run {
    Run {
        run_id: 12,
        experiment_id: 3,
        name: "fmnist-lt/method=ce".into(),
        state: RunState::Queued as i32,
        attempt: 0,
        pending_reason: Some("needs 2 GPUs, 1 free;\n3 runs ahead".into()),
        ..Default::default()
    }
}

#[test]
fn a_queued_run_row_shows_its_pending_reason_on_one_line() {
    assert_eq!(
        run_row(&run()),
        vec![
            "r-12",
            "fmnist-lt/method=ce",
            "queued",
            "0",
            "-",
            "needs 2 GPUs, 1 free; 3 runs ahead"
        ]
    );
}

#[test]
fn a_running_run_row_shows_its_devices() {
    let mut r = run();
    r.state = RunState::Running as i32;
    r.attempt = 2;
    r.pending_reason = None;
    r.grants = vec![
        Grant {
            device_id: "gpu:0".into(),
            share: 1.0,
            mem_mb: None,
        },
        Grant {
            device_id: "gpu:1".into(),
            share: 0.25,
            mem_mb: Some(4096),
        },
    ];
    let row = run_row(&r);
    assert_eq!(row[2], "running");
    assert_eq!(row[3], "2");
    assert_eq!(row[4], "gpu:0, gpu:1 (0.25, 4096 MiB)");
    assert_eq!(row[5], "-");
}

#[test]
fn a_failed_run_row_shows_its_error() {
    let mut r = run();
    r.state = RunState::Failed as i32;
    r.pending_reason = None;
    r.error = Some("exit status 1".into());
    assert_eq!(run_row(&r)[5], "exit status 1");
}

#[test]
fn tables_align_columns_and_leave_the_last_unpadded() {
    let rows = vec![
        vec!["r-1".to_string(), "a".to_string(), "x".to_string()],
        vec!["r-100".to_string(), "longer".to_string(), "".to_string()],
    ];
    assert_eq!(
        table(&["ID", "NAME", "NOTE"], &rows),
        "ID     NAME    NOTE\nr-1    a       x\nr-100  longer\n"
    );
}

#[test]
fn unknown_states_are_named_not_hidden() {
    assert_eq!(state_name(RunState::Cancelled as i32), "cancelled");
    assert_eq!(state_name(42), "unknown(42)");
    assert!(is_terminal(RunState::Failed as i32));
    assert!(!is_terminal(RunState::Running as i32));
    assert!(!is_terminal(42));
}

#[test]
fn csv_rows_leave_missing_values_empty() {
    let epoch = EpochMetrics {
        stage: 1,
        epoch: 3,
        train_loss: 0.5,
        lr: 0.1,
        images_per_sec: 1250.5,
        eval: Some(EvalMetrics {
            test_top1: 0.75,
            many: Some(0.875),
            medium: None,
            few: Some(0.25),
            per_class: vec![],
            val_top1: None,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        metrics_csv_row(&epoch),
        "1,3,0.5,0.1,1250.5,0.75,0.875,,0.25,"
    );
    assert_eq!(METRICS_CSV_HEADER.split(',').count(), 10);
    let no_eval = EpochMetrics {
        stage: 2,
        epoch: 4,
        ..epoch
    };
    let no_eval = EpochMetrics {
        eval: None,
        ..no_eval
    };
    assert_eq!(metrics_csv_row(&no_eval), "2,4,0.5,0.1,1250.5,,,,,");
}

#[test]
fn state_changes_and_logs_read_as_one_line() {
    let change = StateChange {
        from: RunState::Queued as i32,
        to: RunState::Running as i32,
        reason: None,
        grants: vec![Grant {
            device_id: "cpu:0".into(),
            share: 1.0,
            mem_mb: None,
        }],
    };
    assert_eq!(state_change_text(&change), "queued -> running on cpu:0");
    let line = LogLine {
        stream: LogStream::Daemon as i32,
        line: "launch".into(),
        at_ms: 0,
    };
    assert_eq!(log_line_text(&line), "[caudad] launch");
    let line = LogLine {
        stream: LogStream::Stderr as i32,
        line: "oops".into(),
        at_ms: 0,
    };
    assert_eq!(log_line_text(&line), "oops");
}

#[test]
fn device_rows_show_memory_utilization_and_runs() {
    let device = Device {
        device_id: "gpu:0".into(),
        kind: 2,
        name: "NVIDIA H100".into(),
        memory_total_mb: Some(81559),
        memory_used_mb: Some(1024),
        utilization: Some(0.5),
        from_override: false,
        runs: vec![DeviceRun {
            run_id: 4,
            name: "x".into(),
            share: 0.5,
            mem_mb: Some(6000),
        }],
        free_share: 0.5,
        memory_free_mb: Some(80000),
        memory_reserved_mb: Some(6000),
    };
    assert_eq!(
        device_row(&device),
        vec![
            "gpu:0",
            "NVIDIA H100",
            "1024/81559 MiB, 80000 free",
            "6000 MiB",
            "50%",
            "50%",
            "r-4 (0.5, 6000 MiB)"
        ]
    );
}

#[test]
fn device_rows_of_an_override_gpu_and_a_cpu_slot() {
    let gpu = Device {
        device_id: "gpu:3".into(),
        kind: 2,
        name: "gpu".into(),
        memory_total_mb: Some(24000),
        memory_used_mb: None,
        utilization: None,
        from_override: true,
        runs: Vec::new(),
        free_share: 1.0,
        ..Device::default()
    };
    assert_eq!(
        device_row(&gpu),
        vec![
            "gpu:3",
            "gpu [override]",
            "?/24000 MiB",
            "-",
            "-",
            "100%",
            "-"
        ]
    );
    let cpu = Device {
        device_id: "cpu:0".into(),
        kind: 1,
        name: "cpu".into(),
        memory_total_mb: None,
        memory_used_mb: None,
        utilization: None,
        from_override: false,
        runs: Vec::new(),
        free_share: 0.0,
        ..Device::default()
    };
    assert_eq!(
        device_row(&cpu),
        vec!["cpu:0", "cpu", "-", "-", "-", "0%", "-"]
    );
}

#[test]
fn show_says_where_the_gpu_memory_came_from() {
    let mut r = run();
    r.resources = Some(cauda_proto::v1::ResourceRequest {
        gpus: 0,
        gpu_share: Some(0.25),
        gpu_mem_mb: Some(8000),
    });
    r.gpu_mem_source = Some("raised to 8000 MiB (twice its reservation)".into());
    r.peak_gpu_mem_mb = Some(3500);
    r.oom_requeued = true;
    let text = run_details(&r);
    assert!(
        text.contains("resources:    0.25 of a GPU, 8000 MiB\n"),
        "{text}"
    );
    assert!(
        text.contains("gpu memory:   raised to 8000 MiB (twice its reservation)\n"),
        "{text}"
    );
    assert!(text.contains("peak memory:  3500 MiB"), "{text}");
    assert!(text.contains("out of memory: requeued once"), "{text}");
    assert!(!run_details(&run()).contains("gpu memory"));
}

#[test]
fn show_names_the_slurm_job_and_its_pending_reason() {
    let mut r = run();
    r.state = RunState::Running as i32;
    r.attempt = 2;
    r.pending_reason = None;
    assert!(!run_details(&r).contains("slurm"));
    r.slurm_job_id = Some(4711);
    r.slurm_job_attempt = Some(2);
    r.slurm_job_state = Some("PENDING (Resources)".into());
    let text = run_details(&r);
    assert!(
        text.contains("slurm job:    4711 (attempt 2) PENDING (Resources)\n"),
        "{text}"
    );
}

#[test]
fn show_names_the_engine_and_marks_an_older_one() {
    let mut r = run();
    r.engine = "cauda-plugins 0.1.0 recipe 2".into();
    let text = run_details(&r);
    assert!(
        text.ends_with("engine:       cauda-plugins 0.1.0 recipe 2\n"),
        "{text}"
    );
    r.older_engine = true;
    assert!(
        run_details(&r).contains(
            "engine:       cauda-plugins 0.1.0 recipe 2 (older than the daemon's engine)\n"
        )
    );
    r.engine = String::new();
    assert!(
        run_details(&r)
            .contains("engine:       before fingerprints (older than the daemon's engine)\n")
    );
}

#[test]
fn show_lists_the_learned_aggregation_weights_of_a_sade_run() {
    let mut r = run();
    assert!(!run_details(&r).contains("aggregation"));
    r.summary = Some(cauda_proto::v1::RunSummary {
        test_time_aggregation: vec![cauda_proto::v1::AggregatedDistribution {
            distribution: "forward-50".into(),
            weights: vec![0.62, 0.27, 0.11],
            epochs: 5,
            images: 36,
            top1: 0.912,
            mean_top1: 0.88,
            ..Default::default()
        }],
        ..Default::default()
    });
    let text = run_details(&r);
    assert!(text.contains("test-time aggregation (SADE)"), "{text}");
    assert!(
        text.contains("  forward-50   0.62 0.27 0.11  91.2% / 88.0%  (36 images, 5 epochs)\n"),
        "{text}"
    );
}
