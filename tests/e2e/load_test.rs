//! Load, bounded (issue 6, item 6), in a CI-sized configuration: a real `caudad serve` with
//! real workers; 200 concurrent `WatchRun` streams follow two training runs while 50 clients
//! submit at once, each over real sockets. No call fails, every watcher receives every event of
//! its run in order (exactly the seqs a replay of the store returns: no gap, no duplicate) and
//! ends with the run, and every submission
//! is acknowledged and stored exactly once. The full 1,000 watchers / 200 submitters, with
//! latency figures, is `bash bench/load.sh` (the same driver, `benches/load/driver.rs`).

use crate::common;
#[path = "../../daemon/benches/load/driver.rs"]
mod driver;

use std::time::Duration;

use common::Caudad;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_and_submitters_lose_nothing() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\n");
    let config = driver::LoadConfig {
        training_runs: 2,
        epochs: 60,
        watchers: 200,
        watchers_per_connection: 20,
        submitters: 50,
        limit: Duration::from_secs(120),
    };
    let report = driver::run(&daemon, &config)
        .await
        .unwrap_or_else(|e| panic!("load round failed: {e}"));
    assert_eq!(report.submit.len(), config.submitters);
    assert!(report.events >= config.watchers, "{report:?}");
    assert!(
        !report.delivery.is_empty(),
        "the watchers followed the runs live, not only replayed them"
    );
    println!(
        "load: {} events to {} watchers, {} submissions, {:?} wall, peak RSS {} KiB, {} threads",
        report.events,
        config.watchers,
        report.submit.len(),
        report.wall,
        report.peak_rss_kib,
        report.peak_threads
    );
}

/// Lifts this process's open-file limit to its hard limit (the daemon child inherits it): each
/// connection is a descriptor on both sides.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
