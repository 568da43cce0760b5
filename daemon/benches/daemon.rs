//! The daemon's benchmark (issue 3): submit-to-dispatch latency with 1,000 queued runs, the
//! latency of 200 simultaneous submissions (`burst`), metric
//! ingestion through the worker API into sled, `ls` latency over 10,000 stored runs and the
//! resident memory of the real `caudad serve`. Real components throughout (sled in a temp dir,
//! the tonic server on 127.0.0.1:0, tonic clients); only the executor is a recorder, because
//! worker processes are not what this measures. Prints one line per figure and one JSON line.
//!
//! Run with `bash bench/daemon.sh` (`cargo bench -p caudad --bench daemon`). Knobs (env):
//! `BENCH_QUEUED` (1000), `BENCH_SUBMITS` (200), `BENCH_POINTS` (2000; the 64-worker case
//! reports `BENCH_POINTS_64`, 12800, and the no-op floor makes as many calls; the batched case
//! reports 4 x that many in `ReportEpochs` calls of `BENCH_BATCH`, 16), `BENCH_RUNS` (10000),
//! `BENCH_REPS` (100), `BENCH_WALKS` (10), `BENCH_CAUDAD` (the binary; default the one cargo
//! built for this bench), `BENCH_ONLY` (a comma-separated list of the groups to run, default
//! all: `dispatch`, `burst`, `decide`, `ingest` (1, 8 and 64 workers, one epoch a call), `batch`
//! (64 workers, `ReportEpochs`), `floor`, `served` (`ls` and RSS); one group alone is what
//! `valgrind --tool=callgrind` profiles).

#[path = "daemon/burst.rs"]
mod burst;
#[path = "daemon/dispatch.rs"]
mod dispatch;
#[path = "daemon/ingest.rs"]
mod ingest;
#[path = "daemon/rig.rs"]
mod rig;
#[path = "daemon/served.rs"]
mod served;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cauda_proto::v1::RunState;
use serde_json::{Map, Value as Json, json};

/// What one figure holds.
enum Value {
    /// Per-call latencies.
    Latency(Vec<Duration>),
    /// Items per second over a wall time.
    Rate { items: usize, wall: Duration },
    /// Resident memory, MiB.
    Mib(f64),
}

struct Figure {
    key: String,
    label: String,
    value: Value,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Figure {
    fn new(key: &str, label: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.to_string(),
            label: label.into(),
            value,
        }
    }

    fn line(&self) -> String {
        match &self.value {
            Value::Latency(samples) => {
                let mut s = samples.clone();
                s.sort();
                format!(
                    "{:<58} {:>10.3} {:>10.3} {:>10.3} {:>6}",
                    self.label,
                    ms(percentile(&s, 0.5)),
                    ms(percentile(&s, 0.99)),
                    ms(s.last().copied().unwrap_or_default()),
                    s.len()
                )
            }
            Value::Rate { items, wall } => format!(
                "{:<58} {:>10.0}/s ({items} in {:.2} s)",
                self.label,
                *items as f64 / wall.as_secs_f64().max(1e-9),
                wall.as_secs_f64()
            ),
            Value::Mib(mib) => format!("{:<58} {:>10.1} MiB", self.label, mib),
        }
    }

    fn json(&self) -> Json {
        match &self.value {
            Value::Latency(samples) => {
                let mut s = samples.clone();
                s.sort();
                json!({
                    "p50_ms": ms(percentile(&s, 0.5)),
                    "p99_ms": ms(percentile(&s, 0.99)),
                    "max_ms": ms(s.last().copied().unwrap_or_default()),
                    "n": s.len(),
                })
            }
            Value::Rate { items, wall } => json!({
                "per_s": (*items as f64 / wall.as_secs_f64().max(1e-9)).round(),
                "n": items,
                "wall_s": (wall.as_secs_f64() * 1e3).round() / 1e3,
            }),
            Value::Mib(mib) => json!({ "mib": (mib * 10.0).round() / 10.0 }),
        }
    }
}

/// A knob from the environment, or its default.
fn knob(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

/// The figure groups `BENCH_ONLY` names (all when unset).
struct Only(Option<Vec<String>>);

impl Only {
    const GROUPS: [&str; 7] = [
        "dispatch", "burst", "decide", "ingest", "batch", "floor", "served",
    ];

    fn from_env() -> anyhow::Result<Self> {
        let Ok(list) = std::env::var("BENCH_ONLY") else {
            return Ok(Self(None));
        };
        let groups: Vec<String> = list.split(',').map(|g| g.trim().to_string()).collect();
        for g in &groups {
            anyhow::ensure!(
                Self::GROUPS.contains(&g.as_str()),
                "BENCH_ONLY names `{g}`; allowed: {}",
                Self::GROUPS.join(", ")
            );
        }
        Ok(Self(Some(groups)))
    }

    fn runs(&self, group: &str) -> bool {
        self.0.as_ref().is_none_or(|g| g.iter().any(|g| g == group))
    }
}

/// The runtime the bench's clients run on (the daemon has its own).
pub fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .context("starting the clients' runtime")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> anyhow::Result<()> {
    let queued = knob("BENCH_QUEUED", 1000)?;
    let submits = knob("BENCH_SUBMITS", 200)?.max(1);
    let points = knob("BENCH_POINTS", 2000)?.max(8);
    let points_64 = knob("BENCH_POINTS_64", 12_800)?.max(64);
    let batch = knob("BENCH_BATCH", 16)?.max(2);
    let runs = knob("BENCH_RUNS", 10_000)?.max(2);
    let reps = knob("BENCH_REPS", 100)?.max(1);
    let walks = knob("BENCH_WALKS", 10)?.max(1);
    let only = Only::from_env()?;
    let binary = std::env::var_os("BENCH_CAUDAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_caudad")));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = loadavg();
    let started = Instant::now();
    let mut figures = Vec::new();
    let mut emit = |f: Figure| {
        println!("{}", f.line());
        figures.push(f);
    };
    println!("caudad bench: nproc {nproc}, load {load_start}; latencies in ms");
    println!(
        "{:<58} {:>10} {:>10} {:>10} {:>6}",
        "figure", "p50", "p99", "max", "n"
    );

    for q in [0, queued] {
        if !only.runs("dispatch") {
            break;
        }
        let samples = dispatch::submit_to_dispatch(q, submits)?;
        let label = format!("submit -> dispatch, {q} queued");
        emit(Figure::new(
            &format!("dispatch_q{q}"),
            label,
            Value::Latency(samples),
        ));
    }
    if only.runs("burst") {
        let samples = burst::burst(submits)?;
        let label = format!("{submits} simultaneous SubmitExperiment (daemon alone)");
        emit(Figure::new("submit_burst", label, Value::Latency(samples)));
    }
    if only.runs("decide") {
        let decided = dispatch::decide_time(queued, 50)?;
        let label = format!("scheduler::decide, {queued} queued (pure policy)");
        emit(Figure::new("decide", label, Value::Latency(decided)));
    }

    for (k, points) in [(1, points), (8, points), (64, points_64)] {
        if !only.runs("ingest") {
            break;
        }
        let round = ingest::ingest(k, points, 1)?;
        let label = format!(
            "ingest, {k} client(s), ReportEpoch of {} B: points/s",
            round.record_bytes
        );
        let rate = Value::Rate {
            items: round.points,
            wall: round.wall,
        };
        emit(Figure::new(&format!("ingest_k{k}"), label, rate));
        let label = format!("ingest, {k} client(s): one ReportEpoch call");
        emit(Figure::new(
            &format!("ingest_k{k}_call"),
            label,
            Value::Latency(round.calls),
        ));
    }

    if only.runs("batch") {
        let round = ingest::ingest(64, points_64 * 4, batch)?;
        let label = format!("ingest, 64 clients, ReportEpochs of {batch}: points/s");
        let rate = Value::Rate {
            items: round.points,
            wall: round.wall,
        };
        emit(Figure::new("ingest_k64_batch", label, rate));
        let label = format!("ingest, 64 clients: one ReportEpochs call of {batch}");
        emit(Figure::new(
            "ingest_k64_batch_call",
            label,
            Value::Latency(round.calls),
        ));
    }

    if only.runs("floor") {
        let floor = ingest::floor(64, points_64)?;
        let label = "no-op unary RPC (WhoAmI), 64 clients: calls/s (gRPC floor)";
        let rate = Value::Rate {
            items: floor.points,
            wall: floor.wall,
        };
        emit(Figure::new("grpc_floor_k64", label, rate));
    }

    if only.runs("served") {
        served_figures(&binary, runs, reps, walks, &mut emit)?;
    }

    let load_end = loadavg();
    let mut map = Map::new();
    for f in &figures {
        map.insert(f.key.clone(), f.json());
    }
    let line = json!({
        "bench": "daemon",
        "nproc": nproc,
        "load_start": load_start,
        "load_end": load_end,
        "wall_s": started.elapsed().as_secs(),
        "knobs": { "queued": queued, "submits": submits, "points": points,
                   "points_64": points_64, "batch": batch, "runs": runs,
                   "reps": reps, "walks": walks },
        "figures": map,
    });
    println!(
        "done in {:.0} s; load at the end {load_end}",
        started.elapsed().as_secs_f64()
    );
    println!("{line}");
    Ok(())
}

/// The figures of the real `caudad serve`: RSS, filling it with `runs` runs, `ls`.
fn served_figures(
    binary: &std::path::Path,
    runs: usize,
    reps: usize,
    walks: usize,
    emit: &mut impl FnMut(Figure),
) -> anyhow::Result<()> {
    let daemon = served::Served::start(binary)?;
    let runtime = client_runtime()?;
    let outcome = runtime.block_on(async {
        let mut client =
            cauda_proto::v1::cauda_client::CaudaClient::connect(daemon.addr.clone()).await?;
        served::list(&mut client, 100, &[], false).await?;
        let (idle, _) = daemon.rss_mib()?;
        emit(Figure::new(
            "rss_idle",
            "caudad RSS, idle",
            Value::Mib(idle),
        ));
        let fill_start = Instant::now();
        let (times, experiments) = served::fill(&mut client, runs).await?;
        let fill_wall = fill_start.elapsed();
        let label = format!("SubmitExperiment of a {}-run grid", served::GRID.min(runs));
        emit(Figure::new("submit_grid", label, Value::Latency(times)));
        let label = format!("fill {runs} runs through SubmitExperiment: runs/s");
        let fill = Value::Rate {
            items: runs,
            wall: fill_wall,
        };
        emit(Figure::new("fill", label, fill));
        let cancel_start = Instant::now();
        let cancelled = served::cancel(&mut client, experiments[experiments.len() / 2]).await?;
        let label = format!("CancelRun of a {cancelled}-run experiment ({runs} stored)");
        let cancel = Value::Latency(vec![cancel_start.elapsed()]);
        emit(Figure::new("cancel_experiment", label, cancel));
        let (rss, _) = daemon.rss_mib()?;
        let label = format!("caudad RSS, {runs} runs stored");
        emit(Figure::new("rss_filled", label, Value::Mib(rss)));

        let first = served::time_list(&mut client, reps, 100, (100, &[], false)).await?;
        let label = format!("ls first page (100 of {runs})");
        emit(Figure::new("ls_first_page", label, Value::Latency(first)));
        let walk = served::time_list(&mut client, walks, runs, (1000, &[], true)).await?;
        let label = format!("ls all {runs} runs (pages of 1000, as `cauda ls`)");
        emit(Figure::new("ls_walk", label, Value::Latency(walk)));
        let walk = served::time_list(&mut client, walks.min(3), runs, (100, &[], true)).await?;
        let label = format!("ls all {runs} runs (pages of 100)");
        emit(Figure::new("ls_walk_100", label, Value::Latency(walk)));
        let only = [RunState::Cancelled];
        let state = served::time_list(&mut client, reps, cancelled, (1000, &only, true)).await?;
        let label = format!("ls --state cancelled ({cancelled} of {runs}), all pages");
        emit(Figure::new("ls_state", label, Value::Latency(state)));
        let (rss, peak) = daemon.rss_mib()?;
        emit(Figure::new(
            "rss_after_ls",
            "caudad RSS, after the ls walks",
            Value::Mib(rss),
        ));
        emit(Figure::new(
            "rss_peak",
            "caudad RSS, peak (VmHWM)",
            Value::Mib(peak),
        ));
        anyhow::Ok(())
    });
    drop(runtime);
    let stopped = daemon.stop();
    outcome?;
    stopped
}
