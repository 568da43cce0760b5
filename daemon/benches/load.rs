//! The load benchmark (issue 6, item 6): a real `caudad serve` with real workers, 1,000
//! concurrent `WatchRun` streams following training runs while 200 clients submit at once, all
//! over real sockets (`load/driver.rs`, shared with `tests/load_test.rs`, also checks that no
//! event or submission is lost). Prints submit latency p50/p99, live event delivery latency
//! p50/p99, events delivered, wall time and the daemon's peak RSS and threads, then one JSON line.
//!
//! Run with `bash bench/load.sh` (`cargo bench -p caudad --bench load`). Knobs (env):
//! `LOAD_WATCHERS` (1000), `LOAD_SUBMITTERS` (200), `LOAD_TRAINING_RUNS` (2), `LOAD_EPOCHS`
//! (30), `LOAD_PER_CONNECTION` (50 watch streams per HTTP/2 connection).

#[path = "../../tests/e2e/common/mod.rs"]
mod common;
#[path = "load/driver.rs"]
mod driver;

use std::time::Duration;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1].as_secs_f64() * 1e6).round() / 1e3
}

fn main() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // Each connection is a descriptor here and in the daemon (which inherits this limit).
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    let config = driver::LoadConfig {
        training_runs: knob("LOAD_TRAINING_RUNS", 2),
        epochs: u32::try_from(knob("LOAD_EPOCHS", 30))?,
        watchers: knob("LOAD_WATCHERS", 1000),
        watchers_per_connection: knob("LOAD_PER_CONNECTION", 50),
        submitters: knob("LOAD_SUBMITTERS", 200),
        limit: Duration::from_secs(600),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let devices = format!("devices = [\"cpu:{}\"]\n", config.training_runs);
    let report = runtime.block_on(async {
        let daemon = common::Caudad::start(dir.path(), &devices);
        driver::run(&daemon, &config).await
    });
    let report = report.map_err(|e| anyhow::anyhow!("load round failed: {e}"))?;
    println!(
        "{} watchers on {} training runs ({} epochs), {} submitters, {} fd limit",
        config.watchers, config.training_runs, config.epochs, config.submitters, hard
    );
    println!(
        "submit latency        p50 {:>9.3} ms  p99 {:>9.3} ms  ({} submissions)",
        pct(&report.submit, 0.5),
        pct(&report.submit, 0.99),
        report.submit.len()
    );
    println!(
        "event delivery        p50 {:>9.3} ms  p99 {:>9.3} ms  ({} live of {} events delivered)",
        pct(&report.delivery, 0.5),
        pct(&report.delivery, 0.99),
        report.delivery.len(),
        report.events
    );
    println!(
        "wall {:.1} s; daemon peak RSS {:.1} MiB, peak threads {}",
        report.wall.as_secs_f64(),
        report.peak_rss_kib as f64 / 1024.0,
        report.peak_threads
    );
    println!(
        "{}",
        serde_json::json!({
            "watchers": config.watchers,
            "submitters": config.submitters,
            "training_runs": config.training_runs,
            "epochs": config.epochs,
            "submit_p50_ms": pct(&report.submit, 0.5),
            "submit_p99_ms": pct(&report.submit, 0.99),
            "delivery_p50_ms": pct(&report.delivery, 0.5),
            "delivery_p99_ms": pct(&report.delivery, 0.99),
            "events": report.events,
            "wall_s": report.wall.as_secs_f64(),
            "peak_rss_mib": report.peak_rss_kib as f64 / 1024.0,
            "peak_threads": report.peak_threads,
        })
    );
    Ok(())
}
