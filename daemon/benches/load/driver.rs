//! The load driver shared by `tests/load_test.rs` (a CI-sized configuration, asserting
//! correctness) and `benches/load.rs` (the full 1,000 watchers / 200 submitters, printing
//! latencies): against a real `caudad serve` with real workers it opens many `WatchRun` streams
//! on training runs and has many clients submit at once, each over real sockets, and checks
//! that every watcher saw every event of its run in order and ended, and that every submission
//! was acknowledged and stored exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cauda_proto::v1::{self, cauda_client::CaudaClient};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::common::{Caudad, events, get_run, is_terminal, tiny_spec};

/// The shape of one load round.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Training runs the watchers follow (the daemon needs this many CPU slots).
    pub training_runs: usize,
    /// Epochs of each training run (its events keep flowing while the load runs).
    pub epochs: u32,
    /// Concurrent `WatchRun` streams, dealt round-robin over the training runs.
    pub watchers: usize,
    /// Watch streams per HTTP/2 connection.
    pub watchers_per_connection: usize,
    /// Concurrent clients submitting one experiment each, each over its own connection.
    pub submitters: usize,
    /// Bound of the whole round.
    pub limit: Duration,
}

/// What one round measured.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Submit call latencies (connection already open).
    pub submit: Vec<Duration>,
    /// Live events: receive time minus the event's `at_ms` (millisecond clock).
    pub delivery: Vec<Duration>,
    /// Events received over all watchers.
    pub events: usize,
    /// From opening the watchers to the last watcher's end.
    pub wall: Duration,
    /// The daemon's peak resident memory (KiB) and threads, sampled every 100 ms.
    pub peak_rss_kib: u64,
    pub peak_threads: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn channel(url: &str) -> Result<Channel, String> {
    Channel::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect {url}: {e}"))
}

fn spec(name: &str, epochs: u32, seed: usize) -> String {
    tiny_spec(name, epochs, &format!("seed = {seed}\n"))
        .replace("checkpoint_every = 1", "checkpoint_every = 0")
}

/// What one watcher saw: the seqs in order, live-event latencies, whether it saw the end.
struct Watched {
    run: u64,
    seqs: Vec<u64>,
    delivery: Vec<Duration>,
    ended: bool,
}

async fn watch(mut client: CaudaClient<Channel>, run: u64) -> Result<Watched, String> {
    let opened = now_ms();
    let mut stream = client
        .watch_run(v1::WatchRunRequest {
            run_id: run,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("watch r-{run}: {s}"))?
        .into_inner();
    let mut seen = Watched {
        run,
        seqs: Vec::new(),
        delivery: Vec::new(),
        ended: false,
    };
    while let Some(event) = stream
        .message()
        .await
        .map_err(|s| format!("watch r-{run}: {s}"))?
    {
        let at = now_ms();
        if event.at_ms >= opened {
            seen.delivery.push(Duration::from_millis(
                u64::try_from(at - event.at_ms).unwrap_or(0),
            ));
        }
        seen.seqs.push(event.seq);
        if let Some(v1::run_event::Event::State(s)) = &event.event {
            seen.ended |= is_terminal(s.to());
        }
    }
    Ok(seen)
}

/// The daemon's resident memory (KiB) and thread count, from /proc.
pub fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// Runs one load round against `daemon` (started with `cpu:{training_runs}` devices) and
/// returns its figures, or the first thing that went wrong.
pub async fn run(daemon: &Caudad, cfg: &LoadConfig) -> Result<LoadReport, String> {
    let deadline = Instant::now() + cfg.limit;
    let mut admin = CaudaClient::new(channel(&daemon.url).await?);
    let mut training = Vec::new();
    for i in 0..cfg.training_runs {
        let reply = admin
            .submit_experiment(v1::SubmitExperimentRequest {
                spec_toml: spec(&format!("load-train-{i}"), cfg.epochs, 1000 + i),
                user: Some("load".into()),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("submit a training run: {s}"))?;
        training.push(reply.into_inner().runs[0].run_id);
    }

    // Watchers first, so they follow the runs live; then the submitters, all at once.
    let started = Instant::now();
    let mut watchers = JoinSet::new();
    let mut conn = None;
    for w in 0..cfg.watchers {
        if w % cfg.watchers_per_connection.max(1) == 0 {
            conn = Some(channel(&daemon.url).await?);
        }
        let client = CaudaClient::new(conn.clone().ok_or("no connection")?);
        watchers.spawn(watch(client, training[w % training.len()]));
    }
    let mut submitters = JoinSet::new();
    for s in 0..cfg.submitters {
        let url = daemon.url.clone();
        submitters.spawn(async move {
            let mut client = CaudaClient::new(channel(&url).await?);
            let t = Instant::now();
            let reply = client
                .submit_experiment(v1::SubmitExperimentRequest {
                    spec_toml: spec(&format!("load-sub-{s}"), 1, s),
                    user: Some("load".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("submitter {s}: {e}"))?
                .into_inner();
            Ok::<_, String>((t.elapsed(), reply.experiment_id, reply.runs))
        });
    }
    let mut pid_sampler = tokio::time::interval(Duration::from_millis(100));
    let mut report = LoadReport::default();
    let mut submitted: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    while !submitters.is_empty() {
        tokio::select! {
            done = submitters.join_next() => {
                let (latency, experiment, runs) =
                    done.ok_or("no submitter")?.map_err(|e| e.to_string())??;
                report.submit.push(latency);
                submitted.insert(experiment, runs.iter().map(|r| r.run_id).collect());
            }
            _ = pid_sampler.tick() => sample(daemon, &mut report),
        }
        if Instant::now() > deadline {
            return Err("submitters did not finish in time".into());
        }
    }
    check_stored_once(&mut admin, &submitted, cfg.submitters).await?;
    // The submitted runs only queue behind the training runs; cancel them so they never start.
    for &experiment in submitted.keys() {
        admin
            .cancel_run(v1::CancelRunRequest {
                target: Some(v1::cancel_run_request::Target::ExperimentId(experiment)),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("cancel experiment {experiment}: {s}"))?;
    }

    let mut seen = Vec::new();
    while !watchers.is_empty() {
        tokio::select! {
            done = watchers.join_next() => {
                seen.push(done.ok_or("no watcher")?.map_err(|e| e.to_string())??);
            }
            _ = pid_sampler.tick() => sample(daemon, &mut report),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} watchers did not end in time",
                watchers.len(),
                cfg.watchers
            ));
        }
    }
    report.wall = started.elapsed();

    // Every watcher saw every stored event of its run, in order, and the run's end.
    let mut stored = BTreeMap::new();
    for &id in &training {
        let run = get_run(&mut admin, id).await;
        if run.state() != v1::RunState::Succeeded {
            return Err(format!(
                "training run r-{id} ended {:?}: {:?}",
                run.state(),
                run.error
            ));
        }
        let seqs: Vec<u64> = events(&mut admin, id).await.iter().map(|e| e.seq).collect();
        stored.insert(id, seqs);
    }
    // The same seqs as a replay of the store: none missing, none repeated, in order. (A
    // run's Launch records are internal: their seqs are never sent, live or replayed.)
    for w in &seen {
        let want = &stored[&w.run];
        if &w.seqs != want || !w.ended {
            return Err(format!(
                "a watcher of r-{} saw {} (ended: {}); the replay of the store has {}",
                w.run,
                describe(&w.seqs),
                w.ended,
                describe(want),
            ));
        }
        report.events += w.seqs.len();
        report.delivery.extend(&w.delivery);
    }
    report.submit.sort();
    report.delivery.sort();
    Ok(report)
}

fn sample(daemon: &Caudad, report: &mut LoadReport) {
    let (rss, threads) = rss_and_threads(daemon.pid());
    report.peak_rss_kib = report.peak_rss_kib.max(rss);
    report.peak_threads = report.peak_threads.max(threads);
}

/// A seq list in short: its length, ends, and where it first goes backwards or repeats.
fn describe(seqs: &[u64]) -> String {
    let bad = seqs
        .windows(2)
        .position(|w| w[1] <= w[0])
        .map_or_else(String::new, |i| format!(", out of order at {i}"));
    format!(
        "{} events ({:?}..={:?}{bad})",
        seqs.len(),
        seqs.first(),
        seqs.last()
    )
}

/// Every acknowledged submission is stored once: one experiment each, its one run listed under
/// it, and the user's `load-sub-*` runs are exactly the acknowledged ones.
async fn check_stored_once(
    admin: &mut CaudaClient<Channel>,
    submitted: &BTreeMap<u64, Vec<u64>>,
    submitters: usize,
) -> Result<(), String> {
    if submitted.len() != submitters || submitted.values().any(|r| r.len() != 1) {
        return Err(format!(
            "{} distinct experiments acknowledged for {submitters} submissions",
            submitted.len()
        ));
    }
    let acknowledged: BTreeSet<u64> = submitted.values().flatten().copied().collect();
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_runs(v1::ListRunsRequest {
                user: Some("load".into()),
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("list runs: {s}"))?
            .into_inner();
        listed.extend(
            page.runs
                .iter()
                .filter(|r| r.name.starts_with("load-sub-"))
                .map(|r| r.run_id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let unique: BTreeSet<u64> = listed.iter().copied().collect();
    if listed.len() != unique.len() || unique != acknowledged {
        return Err(format!(
            "stored submissions: {} listed ({} distinct), {} acknowledged",
            listed.len(),
            unique.len(),
            acknowledged.len()
        ));
    }
    Ok(())
}
