//! One test suite run against both stores (so they keep identical semantics), plus the sled
//! store's own tests: everything survives a reopen, corrupt records are errors naming the key.
//! This file holds the fixtures and the macro that instantiates the suite for each store; the
//! suite's cases live in one file per topic.

use super::*;
use cauda_model::{ResourceRequest, RunState};

mod checkpoints;
mod delete;
mod events;
mod group_commit;
mod metrics;
mod records;
mod sled_only;
mod spans;

/// A reported epoch in its stored encoding, told apart by its loss.
fn doc(epoch: u32, loss: f32) -> Vec<u8> {
    let record = cauda_plugins::train::EpochRecord {
        stage: 1,
        epoch: epoch as usize,
        train_loss: loss,
        lr: 0.1,
        images_per_sec: 1.0,
        eval: None,
        extra: Default::default(),
    };
    cauda_model::StoredEpoch::encode_parts(1, &record).unwrap()
}

fn experiment(id: u64, runs: &[u64]) -> ExperimentRecord {
    ExperimentRecord {
        id: ExperimentId(id),
        name: format!("exp-{id}"),
        user: "ana".into(),
        spec_text: "[train]\nepochs = 2\n".into(),
        submitted_at: 1_000 + id,
        runs: runs.iter().map(|&r| RunId(r)).collect(),
        points: Vec::new(),
    }
}

fn run(id: u64, experiment: u64, user: &str, state: RunState) -> RunRecord {
    RunRecord {
        id: RunId(id),
        experiment: ExperimentId(experiment),
        name: format!("exp-{experiment}/seed={id}"),
        user: user.into(),
        config_json: "{}".into(),
        config_hash: "00".into(),
        engine: String::new(),
        state,
        priority: 0,
        submitted_at: 2_000 + id,
        started_at: None,
        finished_at: None,
        attempt: 0,
        max_retries: 1,
        failures: 0,
        request: ResourceRequest::default(),
        grants: Vec::new(),
        pending_reason: None,
        error: None,
        depends_on: None,
        summary: None,
        coordinates: Vec::new(),
        facts: None,
        gpu_memory: Default::default(),
        batch_job: None,
    }
}

fn state_event(at: Millis, from: Option<RunState>, to: RunState) -> Event {
    Event {
        at,
        kind: EventKind::State {
            from,
            to,
            reason: None,
        },
    }
}

fn log_event(at: Millis, line: &str) -> Event {
    Event {
        at,
        kind: EventKind::Log {
            stream: LogStream::Stdout,
            line: line.into(),
        },
    }
}

fn ids(runs: &[RunRecord]) -> Vec<u64> {
    runs.iter().map(|r| r.id.0).collect()
}

/// Deterministic pseudo-random bytes (xorshift64), so a chunking bug cannot hide behind zeros.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
/// Ten runs over two experiments, two users and three states.
fn seed_runs(s: &dyn Store) -> Vec<RunRecord> {
    let states = [RunState::Queued, RunState::Running, RunState::Succeeded];
    let runs: Vec<RunRecord> = (1..=10)
        .map(|i| {
            run(
                i,
                1 + i % 2,
                if i <= 4 { "ana" } else { "bo" },
                states[(i % 3) as usize],
            )
        })
        .collect();
    // Out of id order: listing must still come back ordered by id.
    for r in runs.iter().rev() {
        s.put_run(r).unwrap();
    }
    runs
}
fn grid(exp: u64, first_run: u64, n: u64) -> Vec<WriteOp> {
    let ids: Vec<u64> = (first_run..first_run + n).collect();
    let mut ops = vec![WriteOp::PutExperiment(experiment(exp, &ids))];
    for &id in &ids {
        ops.push(WriteOp::PutRun(run(id, exp, "ana", RunState::Queued)));
        ops.push(WriteOp::AppendEvent(
            RunId(id),
            state_event(5, None, RunState::Queued),
        ));
    }
    ops
}

macro_rules! shared_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            shared_suite!(@cases $make;
                records::ids_are_monotonic,
                records::experiments_put_get_list,
                records::runs_put_get_list_filters,
                records::indexes_follow_state_changes,
                events::commit_is_all_or_nothing,
                events::events_order_and_bound,
                metrics::metrics_are_idempotent,
                metrics::metric_with_event_is_one_write,
                metrics::concurrent_reports_store_each_epoch_once,
                spans::batched_reports_read_like_single_ones,
                checkpoints::checkpoints_chunk_and_retain,
                delete::deleting_a_run_removes_everything_under_it,
            );
        }
    };
    (@cases $make:expr; $($topic:ident::$case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (s, _dir) = $make;
                super::$topic::$case(&s);
            }
        )+
    };
}

fn new_sled() -> (SledStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("db"), StoreConfig::default()).unwrap();
    (store, dir)
}

shared_suite!(memory, (MemoryStore::default(), ()));
shared_suite!(sled, new_sled());
