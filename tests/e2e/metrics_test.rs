//! The Prometheus endpoint end to end: the real `caudad serve` with `[metrics]` on port 0
//! prints the bound address; a plain HTTP/1.1 GET scrapes it before and after a tiny real run,
//! and the text is valid exposition whose counters and histograms saw that run: one dispatch,
//! one ingest per epoch, one successful worker exit. Any other path is 404.

use crate::common;

use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_counts_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(
        dir.path(),
        "devices = [\"cpu:2\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let addr = daemon
        .metrics
        .clone()
        .expect("caudad printed its metrics address");

    let before = scrape(&addr).await;
    assert_eq!(get(&before, "cauda_runs{state=\"succeeded\"}"), 0.0);
    assert_eq!(get(&before, "cauda_queue_depth"), 0.0);
    assert_eq!(get(&before, "cauda_devices_free{kind=\"cpu\"}"), 2.0);
    assert_eq!(get(&before, "cauda_devices_held{kind=\"cpu\"}"), 0.0);
    assert_eq!(get(&before, "cauda_dispatch_latency_seconds_count"), 0.0);
    assert_eq!(
        get(&before, "cauda_worker_exits_total{cause=\"succeeded\"}"),
        0.0
    );
    assert_eq!(get(&before, "cauda_slurm_poll_errors_total"), 0.0);

    let mut client = daemon.client().await;
    let ids = submit_ids(&mut client, &tiny_spec("scraped", 3, "")).await;
    assert_eq!(ids.len(), 1);
    let run = wait_all_done(&mut client, &ids, LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
    let stored = epochs(&mut client, ids[0]).await.len();
    assert_eq!(stored, 3);

    // The exit is counted just after the run's end is committed: poll briefly.
    let after = wait_for(Duration::from_secs(10), "the exit to be counted", || {
        let addr = addr.clone();
        async move {
            let s = scrape(&addr).await;
            (get(&s, "cauda_worker_exits_total{cause=\"succeeded\"}") >= 1.0).then_some(s)
        }
    })
    .await;
    assert_eq!(get(&after, "cauda_runs{state=\"succeeded\"}"), 1.0);
    assert_eq!(get(&after, "cauda_runs{state=\"running\"}"), 0.0);
    assert_eq!(get(&after, "cauda_queue_depth"), 0.0);
    assert_eq!(get(&after, "cauda_queue_oldest_wait_seconds"), 0.0);
    assert_eq!(get(&after, "cauda_devices_free{kind=\"cpu\"}"), 2.0);
    assert!(get(&after, "cauda_dispatch_latency_seconds_count") >= 1.0);
    assert_eq!(
        get(&after, "cauda_epoch_ingest_seconds_count"),
        stored as f64
    );
    assert!(get(&after, "cauda_epoch_ingest_seconds_sum") > 0.0);
    assert_eq!(
        get(&after, "cauda_worker_exits_total{cause=\"succeeded\"}"),
        1.0
    );
    for cause in ["failed", "killed", "oom", "lost_heartbeat", "cancelled"] {
        let series = format!("cauda_worker_exits_total{{cause=\"{cause}\"}}");
        assert_eq!(get(&after, &series), 0.0, "{series}");
    }

    for (method, path) in [("GET", "/"), ("GET", "/metricsz"), ("POST", "/metrics")] {
        let addr = addr.clone();
        let (status, _) = tokio::task::spawn_blocking(move || http(&addr, method, path))
            .await
            .expect("request task");
        assert_eq!(status, 404, "{method} {path}");
    }
}

#[test]
fn a_metrics_port_in_use_stops_the_daemon_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = dir.path().join("caudad.toml");
    std::fs::write(&path, format!("[metrics]\nlisten = \"{addr}\"\n")).unwrap();
    let child = std::process::Command::new(common::caudad_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn caudad serve");
    let out = output_within(child, Duration::from_secs(30), "caudad serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics.listen") && stderr.contains(&addr.to_string()),
        "{stderr}"
    );
}

/// A command run whose program does `script`, waited to its end.
async fn command_run(
    client: &mut cauda_proto::v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    name: &str,
    script: &str,
    extra: &str,
) -> v1::Run {
    let spec =
        format!("name = \"{name}\"\n{extra}\n[command]\nargv = [\"sh\", \"-c\", {script:?}]\n");
    let ids = submit_ids(client, &spec).await;
    wait_all_done(client, &ids, LIMIT).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exit_cause_is_counted_from_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(
        dir.path(),
        "devices = [\"cpu:2\", \"gpu:1@16000\"]\nmax_retries = 0\nheartbeat_timeout_ms = 2000\n\
         kill_grace_ms = 500\n[commands]\nenabled = true\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let addr = daemon.metrics.clone().expect("metrics address");
    let mut client = daemon.client().await;
    // Programs (command runs) that end their attempts in each way a worker can end.
    let failed = command_run(&mut client, "failed", "exit 3", "").await;
    assert_eq!(failed.state(), v1::RunState::Failed);
    // The program kills its worker (`caudad work`) with a signal the daemon did not send.
    let killed = command_run(&mut client, "killed", "kill -9 $PPID; sleep 5", "").await;
    assert_eq!(killed.state(), v1::RunState::Failed);
    // The program stops its worker: no heartbeat for heartbeat_timeout_ms.
    let lost = command_run(&mut client, "lost", "kill -STOP $PPID; sleep 30", "").await;
    assert_eq!(lost.state(), v1::RunState::Failed, "{}", lost.error());
    // Out of GPU memory on a share: requeued once (one oom exit), then failed (a second).
    let oom = command_run(
        &mut client,
        "oom",
        "echo 'CUDA out of memory. Tried to allocate 2.00 GiB' >&2; exit 1",
        "[resources]\ngpu_share = 0.5\ngpu_mem_mb = 2000",
    )
    .await;
    assert_eq!((oom.state(), oom.attempt), (v1::RunState::Failed, 2));
    // Cancelled while its program sleeps.
    let spec = "name = \"cancelled\"\n[command]\nargv = [\"sleep\", \"60\"]\n";
    let id = submit_ids(&mut client, spec).await[0];
    wait_for(LIMIT, "the sleeper to run", || {
        let mut c = client.clone();
        async move { (get_run(&mut c, id).await.state() == v1::RunState::Running).then_some(()) }
    })
    .await;
    client.cancel_run(cancel_request(id)).await.unwrap();
    let want = [
        ("failed", 1.0),
        ("killed", 1.0),
        ("lost_heartbeat", 1.0),
        ("oom", 2.0),
        ("cancelled", 1.0),
        ("succeeded", 0.0),
    ];
    let seen = wait_for(Duration::from_secs(30), "every exit counted", || {
        let addr = addr.clone();
        async move {
            let s = scrape(&addr).await;
            want.iter()
                .all(|(cause, n)| {
                    get(
                        &s,
                        &format!("cauda_worker_exits_total{{cause=\"{cause}\"}}"),
                    ) == *n
                })
                .then_some(s)
        }
    })
    .await;
    assert_eq!(get(&seen, "cauda_runs{state=\"failed\"}"), 4.0);
    assert_eq!(get(&seen, "cauda_runs{state=\"cancelled\"}"), 1.0);
}
