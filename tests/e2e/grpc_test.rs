//! The gRPC API end to end: a real sled store in a temp dir, the server on 127.0.0.1:0 with a
//! oneshot shutdown, and a real tonic client. The executor does nothing, so started runs stay
//! Running and the test controls every state change through the API.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use cauda_proto::v1::cauda_client::CaudaClient;
use cauda_proto::v1::{self, cancel_run_request::Target};
use caudad::core::Clock;
use caudad::model::Millis;
use common::InProcess;
use tonic::Code;
use tonic::transport::Channel;

const DEMO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/digits-demo.toml"
));

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> Millis {
        1_000
    }
}

async fn all_runs(client: &mut CaudaClient<Channel>) -> Vec<v1::Run> {
    client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .expect("list runs")
        .into_inner()
        .runs
}

async fn last_seq(mut stream: tonic::Streaming<v1::RunEvent>) -> u64 {
    let mut last = 0;
    while let Some(ev) = stream.message().await.expect("event") {
        last = ev.seq;
    }
    last
}

fn state(run: &v1::Run) -> v1::RunState {
    v1::RunState::try_from(run.state).expect("known state")
}

async fn submit_demo(client: &mut CaudaClient<Channel>) -> v1::SubmitExperimentResponse {
    client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: DEMO.to_string(),
            user: Some("ada".into()),
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_schedule_cancel_watch_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcess::start(dir.path(), &["cpu:2".to_string()], Arc::new(FixedClock)).await;
    let mut client = server.client().await;

    let submitted = submit_demo(&mut client).await;
    assert_eq!(submitted.runs.len(), 13);
    let runs = all_runs(&mut client).await;
    assert_eq!(runs.len(), 13);
    let running: Vec<_> = runs
        .iter()
        .filter(|r| state(r) == v1::RunState::Running)
        .collect();
    assert_eq!(running.len(), 2);
    let devices: Vec<_> = running
        .iter()
        .map(|r| r.grants[0].device_id.clone())
        .collect();
    assert_eq!(devices, ["cpu:0", "cpu:1"]);
    for r in &runs {
        match state(r) {
            v1::RunState::Running => assert!(r.pending_reason.is_none()),
            v1::RunState::Queued => assert!(r.pending_reason.is_some(), "{r:?}"),
            other => panic!("unexpected state {other:?}"),
        }
    }

    // Cancel a queued run: it is Cancelled and the queue keeps the others.
    let victim = runs
        .iter()
        .find(|r| state(r) == v1::RunState::Queued)
        .expect("a queued run")
        .run_id;
    let out = client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(victim)),
            reason: Some("not needed".into()),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(out.cancelled_run_ids, [victim]);
    // Cancel a running run: its slot goes to the first queued run.
    let running_id = running[0].run_id;
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(running_id)),
            reason: None,
        })
        .await
        .expect("cancel running");
    let after = all_runs(&mut client).await;
    let by_id = |id: u64| after.iter().find(|r| r.run_id == id).expect("run");
    assert_eq!(state(by_id(victim)), v1::RunState::Cancelled);
    assert_eq!(state(by_id(running_id)), v1::RunState::Cancelled);
    let now_running: Vec<u64> = after
        .iter()
        .filter(|r| state(r) == v1::RunState::Running)
        .map(|r| r.run_id)
        .collect();
    assert_eq!(now_running.len(), 2);
    let moved_up = after
        .iter()
        .find(|r| state(r) == v1::RunState::Running && r.run_id != running[1].run_id)
        .expect("a queued run moved up");
    assert_eq!(moved_up.grants[0].device_id, running[0].grants[0].device_id);

    // Cancelling again changes nothing.
    let again = client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(victim)),
            reason: None,
        })
        .await
        .expect("cancel again")
        .into_inner();
    assert_eq!(again.already_finished_run_ids, [victim]);

    // Watching the cancelled running run replays Queued, Running, Cancelled and ends.
    let mut stream = client
        .watch_run(v1::WatchRunRequest {
            run_id: running_id,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    let mut seqs = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("watch ends")
        .expect("event")
    {
        seqs.push(ev.seq);
        if let Some(v1::run_event::Event::State(s)) = ev.event {
            seen.push(v1::RunState::try_from(s.to).expect("state"));
        }
    }
    assert_eq!(
        seen,
        [
            v1::RunState::Queued,
            v1::RunState::Running,
            v1::RunState::Cancelled
        ]
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] == 1,
        "{seqs:?}"
    );

    // A live watcher from past the stored events sees only the cancellation, then the end.
    let live_id = moved_up.run_id;
    let stored = client
        .watch_run(v1::WatchRunRequest {
            run_id: live_id,
            replay_only: true,
            ..Default::default()
        })
        .await
        .expect("replay")
        .into_inner();
    let last = last_seq(stored).await;
    let mut live = client
        .watch_run(v1::WatchRunRequest {
            run_id: live_id,
            from_seq: last + 1,
            ..Default::default()
        })
        .await
        .expect("watch live")
        .into_inner();
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(live_id)),
            reason: Some("live".into()),
        })
        .await
        .expect("cancel live");
    let ev = tokio::time::timeout(Duration::from_secs(2), live.message())
        .await
        .expect("live event")
        .expect("stream")
        .expect("an event");
    // The last replayed event was the change to RUNNING (its launch record came just before
    // it, with no wire form): the cancellation follows at once.
    assert_eq!(ev.seq, last + 1);
    assert!(
        matches!(ev.event, Some(v1::run_event::Event::State(ref s)) if s.reason.as_deref() == Some("live"))
    );
    let end = tokio::time::timeout(Duration::from_secs(2), live.message())
        .await
        .expect("stream ends")
        .expect("stream");
    assert!(end.is_none());
    let after = all_runs(&mut client).await;

    // Restart on the same data directory: same runs, same states.
    let before: Vec<(u64, i32)> = after.iter().map(|r| (r.run_id, r.state)).collect();
    drop(client);
    server.shutdown().await;
    let server = InProcess::start(dir.path(), &["cpu:2".to_string()], Arc::new(FixedClock)).await;
    let mut client = server.client().await;
    let restored: Vec<(u64, i32)> = all_runs(&mut client)
        .await
        .iter()
        .map(|r| (r.run_id, r.state))
        .collect();
    assert_eq!(restored, before);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_plugins_health_and_concurrency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcess::start(dir.path(), &["cpu:2".to_string()], Arc::new(FixedClock)).await;
    let mut client = server.client().await;

    // An invalid spec names its key and stores nothing.
    let bad = DEMO.replace("epochs = 60", "epochs = 60\nbatch_sise = 3");
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: bad,
            ..Default::default()
        })
        .await
        .expect_err("invalid spec");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("batch_sise"), "{}", err.message());
    // One bad grid point of thirteen: nothing of the experiment is stored.
    let bad = DEMO.replace("\"ce\", \"focal\"", "\"ce\", \"nope\"");
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: bad,
            ..Default::default()
        })
        .await
        .expect_err("unknown preset");
    let detail = cauda_proto::spec_error_from_status(&err).expect("spec error details");
    assert!(detail.key.ends_with("method"), "{detail:?}");
    assert!(detail.reason.contains("nope"), "{detail:?}");
    assert!(all_runs(&mut client).await.is_empty());

    // Unknown ids are NOT_FOUND.
    let err = client
        .get_run(v1::GetRunRequest { run_id: 999 })
        .await
        .expect_err("unknown run");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .watch_run(v1::WatchRunRequest {
            run_id: 999,
            ..Default::default()
        })
        .await
        .expect_err("unknown run");
    assert_eq!(err.code(), Code::NotFound);

    let listed = client
        .list_plugins(v1::ListPluginsRequest::default())
        .await
        .expect("plugins")
        .into_inner();
    assert!(!listed.plugins.is_empty());
    // Every built-in method names its family and sub-family in the survey's taxonomy.
    let book = cauda_plugins::spec::PresetBook::builtin();
    assert_eq!(listed.methods.len(), book.names().len());
    for m in &listed.methods {
        assert!(
            !m.family.is_empty() && !m.subfamily.is_empty() && !m.paper.is_empty(),
            "{m:?}"
        );
    }

    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // 50 concurrent clients reading runs all succeed; ListRuns pages by run id.
    let submitted = submit_demo(&mut client).await;
    let page = client
        .list_runs(v1::ListRunsRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.runs.len(), 5);
    assert_eq!(page.next_page_token, page.runs[4].run_id.to_string());
    let first = submitted.runs[0].run_id;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50u64 {
        let mut c = client.clone();
        tasks.spawn(async move {
            c.get_run(v1::GetRunRequest {
                run_id: first + i % 13,
            })
            .await
            .map(|_| ())?;
            c.list_runs(v1::ListRunsRequest::default())
                .await
                .map(|_| ())
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(5), tasks.join_all())
        .await
        .expect("bounded");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcess::start(dir.path(), &["cpu:2".to_string()], Arc::new(FixedClock)).await;
    let mut client = server.client().await;
    // Over the 1 MiB request limit: refused before it is decoded.
    let huge = format!("{DEMO}\n# {}\n", "x".repeat(2 << 20));
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: huge,
            ..Default::default()
        })
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    // Under the request limit but over the spec limit: a spec error naming the limit.
    let big = format!("{DEMO}\n# {}\n", "x".repeat(300 << 10));
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: big,
            ..Default::default()
        })
        .await
        .expect_err("spec too large");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("limit"), "{err}");
    assert!(all_runs(&mut client).await.is_empty(), "nothing stored");

    // The worker service checks its wire rules before the core sees anything.
    let id = submit_demo(&mut client).await.runs[0].run_id;
    let mut worker =
        cauda_proto::v1::worker_client::WorkerClient::connect(format!("http://{}", server.addr))
            .await
            .expect("connect worker");
    let upload = |parts: Vec<v1::CheckpointChunk>| {
        let mut w = worker.clone();
        async move { w.upload_checkpoint(tokio_stream::iter(parts)).await }
    };
    let data = |n: usize| v1::CheckpointChunk {
        part: Some(v1::checkpoint_chunk::Part::Data(vec![7; n])),
    };
    let meta = |total: u64| v1::CheckpointChunk {
        part: Some(v1::checkpoint_chunk::Part::Meta(v1::CheckpointMeta {
            run_id: id,
            attempt: 1,
            epoch: 1,
            stage: 1,
            total_bytes: total,
            sha256: String::new(),
        })),
    };
    let no_meta = upload(vec![data(3)]).await.expect_err("no meta");
    assert_eq!(no_meta.code(), Code::InvalidArgument, "{no_meta}");
    let big_chunk = upload(vec![meta(2 << 20), data((1 << 20) + 1)])
        .await
        .expect_err("chunk over 1 MiB");
    assert_eq!(big_chunk.code(), Code::InvalidArgument, "{big_chunk}");
    let short = upload(vec![meta(10), data(3)]).await.expect_err("short");
    assert_eq!(short.code(), Code::DataLoss, "{short}");
    let digest = upload(vec![meta(3), data(3)])
        .await
        .expect_err("bad digest");
    assert_eq!(digest.code(), Code::DataLoss, "{digest}");
    let stale = worker
        .register(v1::RegisterRequest {
            run_id: id,
            attempt: 2,
            ..Default::default()
        })
        .await
        .expect_err("stale attempt");
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale}");
    let err = client
        .get_checkpoint(v1::GetCheckpointRequest {
            run_id: id,
            ..Default::default()
        })
        .await
        .expect_err("no checkpoint was stored");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    server.shutdown().await;
}
