//! Chaos, bounded (issue 6): a grid trains while the test SIGKILLs random workers and the daemon
//! itself, three rounds each. At the end every run succeeded exactly once, every run's epochs are
//! 1..N with none missing or repeated, and every metric acknowledged before a kill is still
//! stored unchanged.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(240);
const EPOCHS: u32 = 300;
const ROUNDS: usize = 3;

/// A small deterministic generator (the test must replay the same kills).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Every stored epoch of every run: (run, epoch) -> raw JSON.
async fn snapshot(daemon: &Caudad, ids: &[u64]) -> BTreeMap<(u64, u32), String> {
    let mut client = daemon.client().await;
    let mut out = BTreeMap::new();
    for &id in ids {
        for m in epochs(&mut client, id).await {
            out.insert((id, m.epoch), m.raw_json);
        }
    }
    out
}

/// Waits until the stored epochs grew by at least `more` since `before`, or everything ended.
async fn progress(daemon: &Caudad, ids: &[u64], before: usize, more: usize) {
    wait_for(LIMIT, "training progress", || async move {
        let grown = snapshot(daemon, ids).await.len() >= before + more;
        let mut client = daemon.client().await;
        let mut all_done = true;
        for &id in ids {
            all_done &= is_terminal(get_run(&mut client, id).await.state());
        }
        (grown || all_done).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_killed_workers_and_a_killed_daemon_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = [\"cpu:2\"]\nmax_retries = 10\n";
    let mut daemon = Caudad::start(dir.path(), config);
    let mut client = daemon.client().await;
    let spec = tiny_spec("chaos", EPOCHS, "[sweep]\n\"train.seed\" = [1, 2, 3, 4]\n");
    let ids = submit_ids(&mut client, &spec).await;
    let mut rng = Lcg(7);
    let mut acknowledged = BTreeMap::new();
    for round in 0..ROUNDS {
        // A worker dies.
        let seen = snapshot(&daemon, &ids).await.len();
        progress(&daemon, &ids, seen, 5).await;
        let workers = daemon.workers();
        if !workers.is_empty() {
            let victim = workers[rng.next(workers.len())];
            acknowledged.extend(snapshot(&daemon, &ids).await);
            kill9(victim.0);
        }
        // Then the daemon dies and comes back on the same data.
        let seen = snapshot(&daemon, &ids).await.len();
        progress(&daemon, &ids, seen, 5).await;
        acknowledged.extend(snapshot(&daemon, &ids).await);
        daemon.kill9();
        drop(daemon);
        daemon = Caudad::start(dir.path(), config);
        eprintln!("round {round}: {} epochs acknowledged", acknowledged.len());
    }
    client = daemon.client().await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let stored = snapshot(&daemon, &ids).await;
    for run in &runs {
        assert_finished_once(&mut client, run, EPOCHS).await;
    }
    for (key, json) in &acknowledged {
        assert_eq!(
            stored.get(key),
            Some(json),
            "acknowledged metric {key:?} kept unchanged"
        );
    }
    assert!(acknowledged.len() > 10, "the kills happened mid-training");
}
