//! The Prometheus endpoint end to end: the real `caudad serve` with `[metrics]` on port 0
//! prints the bound address; a plain HTTP/1.1 GET scrapes it before and after a tiny real run,
//! and the text is valid exposition whose counters and histograms saw that run: one dispatch,
//! one ingest per epoch, one successful worker exit. Any other path is 404.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// One HTTP/1.1 request over a fresh connection: (status, body). Handles a chunked body.
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { unchunk(body) } else { body.into() })
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

async fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let addr = addr.to_string();
    let (status, text) = tokio::task::spawn_blocking(move || http(&addr, "GET", "/metrics"))
        .await
        .expect("scrape task");
    assert_eq!(status, 200, "{text}");
    parse_exposition(&text)
}

/// Every sample line (`name{labels} value`, or `name value`) by its series; panics naming a
/// line that is not exposition text.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment == "EOF"
                    || ["HELP ", "TYPE ", "UNIT "]
                        .iter()
                        .any(|k| comment.starts_with(k)),
                "unexpected comment {line:?}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name.starts_with("cauda_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = series[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in labels.split(',') {
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && value.len() >= 2
                        && value.starts_with('"')
                        && value.ends_with('"'),
                    "bad label {pair:?} in {line:?}"
                );
            }
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing; have {:?}", samples.keys()))
}

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
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_caudad"))
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
