//! Deleting runs end to end on the real `caudad serve` with `[auth]`, real workers and sled:
//! only the owner or an admin deletes (another user gets PERMISSION_DENIED, no token gets
//! UNAUTHENTICATED), only finished runs go (a running one is refused until cancelled), a run
//! another experiment reuses is refused with that experiment named, and a deleted run's
//! record, metrics, events and checkpoints are gone — also after a restart of the daemon.
//! `[quotas] max_queued_runs_per_user` refuses a user's submission past it (RESOURCE_EXHAUSTED,
//! nothing stored) while other users still submit; `max_gpus_per_user` keeps a user's further
//! GPU runs queued with the reason "user ada at GPU quota 1/1" while another user's run starts.

use crate::common;

use std::process::Command;
use std::time::Duration;

use cauda_proto::v1::{self, cauda_client::CaudaClient, delete_run_request::Target};
use common::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

const LIMIT: Duration = Duration::from_secs(120);

async fn submit_as(
    c: &mut CaudaClient<Channel>,
    token: &str,
    spec: &str,
) -> v1::SubmitExperimentResponse {
    let request = v1::SubmitExperimentRequest {
        spec_toml: spec.to_string(),
        source_name: Some("own.toml".into()),
        ..Default::default()
    };
    c.submit_experiment(as_user(token, request))
        .await
        .expect("submit")
        .into_inner()
}

async fn run_of(c: &mut CaudaClient<Channel>, id: u64) -> Result<v1::Run, tonic::Status> {
    c.get_run(as_user("t-root", v1::GetRunRequest { run_id: id }))
        .await
        .map(|r| r.into_inner().run.expect("run"))
}

async fn delete(
    c: &mut CaudaClient<Channel>,
    token: Option<&str>,
    target: Target,
) -> Result<v1::DeleteRunResponse, tonic::Status> {
    let message = v1::DeleteRunRequest {
        target: Some(target),
    };
    let request = match token {
        Some(t) => as_user(t, message),
        None => Request::new(message),
    };
    c.delete_run(request).await.map(|r| r.into_inner())
}

async fn wait_state(c: &mut CaudaClient<Channel>, id: u64, done: bool) -> v1::Run {
    wait_for(LIMIT, "the run's state", || {
        let mut c = c.clone();
        async move {
            let run = run_of(&mut c, id).await.expect("get run");
            let reached = if done {
                is_terminal(run.state())
            } else {
                run.state() == v1::RunState::Running
            };
            reached.then_some(run)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owners_and_admins_delete_finished_runs_that_nothing_else_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Caudad::start(dir.path(), &three_users_config());
    let mut c = daemon.client().await;

    // ada's finished run, reused by bob's identical experiment.
    let spec = tiny_spec("owned", 1, "");
    let ada = submit_as(&mut c, "t-ada", &spec).await;
    let r1 = ada.runs[0].run_id;
    assert_eq!(
        wait_state(&mut c, r1, true).await.state(),
        v1::RunState::Succeeded
    );
    let bob = submit_as(&mut c, "t-bob", &spec).await;
    assert!(bob.runs[0].reused && bob.runs[0].run_id == r1, "{bob:?}");

    // No token, another user: refused, nothing deleted.
    let err = delete(&mut c, None, Target::RunId(r1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = delete(&mut c, Some("t-bob"), Target::RunId(r1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("belongs to ada"), "{err:?}");
    let err = delete(
        &mut c,
        Some("t-bob"),
        Target::ExperimentId(ada.experiment_id),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The owner, but bob's experiment reuses the run.
    let err = delete(
        &mut c,
        Some("t-ada"),
        Target::ExperimentId(ada.experiment_id),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("experiment e-{} reuses it", bob.experiment_id)),
        "{err:?}"
    );
    assert!(run_of(&mut c, r1).await.is_ok());

    // A running run is not deleted until it is cancelled.
    let long = submit_as(&mut c, "t-ada", &tiny_spec("long", 500, "seed = 3\n")).await;
    let r2 = long.runs[0].run_id;
    wait_state(&mut c, r2, false).await;
    let err = delete(&mut c, Some("t-ada"), Target::RunId(r2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("cancel it first"), "{err:?}");
    c.cancel_run(as_user(
        "t-ada",
        v1::CancelRunRequest {
            target: Some(v1::cancel_run_request::Target::RunId(r2)),
            reason: None,
        },
    ))
    .await
    .expect("cancel");
    wait_state(&mut c, r2, true).await;
    let done = delete(&mut c, Some("t-ada"), Target::RunId(r2))
        .await
        .expect("delete r2");
    assert_eq!(done.deleted_run_ids, [r2]);
    // Its experiment had no other run: it went too.
    assert_eq!(done.deleted_experiment_ids, [long.experiment_id]);

    // bob deletes his experiment (it created nothing: only the record goes); then ada may
    // delete hers, with the run's metrics, events and checkpoints.
    let done = delete(
        &mut c,
        Some("t-bob"),
        Target::ExperimentId(bob.experiment_id),
    )
    .await
    .expect("bob deletes his experiment");
    assert!(done.deleted_run_ids.is_empty(), "{done:?}");
    assert_eq!(done.deleted_experiment_ids, [bob.experiment_id]);
    assert!(has_checkpoint(&mut c, r1).await);
    let done = delete(
        &mut c,
        Some("t-ada"),
        Target::ExperimentId(ada.experiment_id),
    )
    .await
    .expect("ada deletes hers");
    assert_eq!(done.deleted_run_ids, [r1]);
    assert_gone(&mut c, r1, ada.experiment_id).await;

    // An admin deletes anyone's run; a second delete is NOT_FOUND.
    let eve = submit_as(&mut c, "t-bob", &tiny_spec("bobs", 1, "seed = 5\n")).await;
    let r3 = eve.runs[0].run_id;
    wait_state(&mut c, r3, true).await;
    let done = delete(&mut c, Some("t-root"), Target::RunId(r3))
        .await
        .expect("admin deletes");
    assert_eq!(done.deleted_run_ids, [r3]);
    let err = delete(&mut c, Some("t-root"), Target::RunId(r3))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // A new submission of ada's spec trains again instead of reusing the deleted run.
    let again = submit_as(&mut c, "t-ada", &spec).await;
    assert!(
        !again.runs[0].reused && again.runs[0].run_id != r1,
        "{again:?}"
    );
    let again = wait_state(&mut c, again.runs[0].run_id, true).await;
    assert_eq!(again.state(), v1::RunState::Succeeded);

    // Gone for good: a restarted daemon on the same sled files has none of it.
    daemon.kill9();
    let daemon = Caudad::start(dir.path(), &three_users_config());
    let mut c = daemon.client().await;
    assert_gone(&mut c, r1, ada.experiment_id).await;
    assert_gone(&mut c, r3, eve.experiment_id).await;
}

/// Whether run `id` has a stored checkpoint.
async fn has_checkpoint(c: &mut CaudaClient<Channel>, id: u64) -> bool {
    let request = v1::GetCheckpointRequest {
        run_id: id,
        ..Default::default()
    };
    c.get_checkpoint(as_user("t-root", request)).await.is_ok()
}

/// Run `id` and experiment `exp` are NOT_FOUND everywhere a user could look.
async fn assert_gone(c: &mut CaudaClient<Channel>, id: u64, exp: u64) {
    assert_eq!(run_of(c, id).await.unwrap_err().code(), Code::NotFound);
    let err = c
        .get_metrics(as_user("t-root", v1::GetMetricsRequest { run_id: id }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(!has_checkpoint(c, id).await);
    let err = c
        .get_experiment(as_user(
            "t-root",
            v1::GetExperimentRequest { experiment_id: exp },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let listed = c
        .list_runs(as_user("t-root", v1::ListRunsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .runs;
    assert!(listed.iter().all(|r| r.run_id != id), "{listed:?}");
}

#[test]
fn cauda_rm_says_what_went_and_why_not() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Caudad::start(dir.path(), &three_users_config());
    let spec = dir.path().join("rm.toml");
    std::fs::write(&spec, tiny_spec("rm", 1, "seed = 11\n")).expect("write spec");
    let cauda = |token: &str, args: &[&str]| {
        let out = Command::new(&cli)
            .arg("--addr")
            .arg(&daemon.url)
            .args(args)
            .env("CAUDA_TOKEN", token)
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .expect("cauda runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = cauda(
        "t-ada",
        &["submit", spec.to_str().expect("utf-8"), "--wait"],
    );
    assert!(ok, "{text}");
    let (ok, text) = cauda("t-bob", &["rm", "--experiment", "e-1"]);
    assert!(!ok && text.contains("belongs to ada"), "{text}");
    let (ok, text) = cauda("t-ada", &["rm", "--experiment", "e-1"]);
    assert!(ok, "{text}");
    assert_eq!(text, "deleted r-1\ndeleted experiment e-1\n");
    let (ok, text) = cauda("t-ada", &["show", "r-1"]);
    assert!(!ok && text.contains("not found"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_the_queued_quota_is_refused_and_others_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        three_users_config().replace("cpu:2", "cpu:1") + "[quotas]\nmax_queued_runs_per_user = 1\n";
    let daemon = Caudad::start(dir.path(), &config);
    let mut c = daemon.client().await;
    let long = |seed: u32| tiny_spec("quota", 500, &format!("seed = {seed}\n"));
    let running = submit_as(&mut c, "t-ada", &long(1)).await.runs[0].run_id;
    wait_state(&mut c, running, false).await;
    let queued = submit_as(&mut c, "t-ada", &long(2)).await.runs[0].run_id;
    let request = v1::SubmitExperimentRequest {
        spec_toml: long(3),
        ..Default::default()
    };
    let err = c
        .submit_experiment(as_user("t-ada", request))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("1 queued + 1 new"), "{err:?}");
    assert!(
        err.message().contains("max_queued_runs_per_user"),
        "{err:?}"
    );
    let listed = c
        .list_runs(as_user("t-root", v1::ListRunsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .runs;
    assert_eq!(
        listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [running, queued]
    );
    // bob has nothing queued: his submission goes through.
    let bob = submit_as(&mut c, "t-bob", &long(4)).await;
    assert_eq!(bob.runs.len(), 1);
    for run in [running, queued, bob.runs[0].run_id] {
        let cancel = v1::CancelRunRequest {
            target: Some(v1::cancel_run_request::Target::RunId(run)),
            reason: None,
        };
        c.cancel_run(as_user("t-root", cancel))
            .await
            .expect("cancel");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_the_gpu_quota_waits_while_another_user_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two GPUs by override (the runs train on the CPU backend; the scheduler only counts).
    let config = three_users_config().replace("\"cpu:2\"", "\"gpu:0\", \"gpu:1\"")
        + "[quotas]\nmax_gpus_per_user = 1\n";
    let daemon = Caudad::start(dir.path(), &config);
    let mut c = daemon.client().await;
    let gpu_run = |seed: u32| {
        tiny_spec(
            "gpu-quota",
            500,
            &format!("seed = {seed}\n[resources]\ngpus = 1\n"),
        )
    };
    let first = submit_as(&mut c, "t-ada", &gpu_run(1)).await.runs[0].run_id;
    wait_state(&mut c, first, false).await;
    let second = submit_as(&mut c, "t-ada", &gpu_run(2)).await.runs[0].run_id;
    let bobs = submit_as(&mut c, "t-bob", &gpu_run(3)).await.runs[0].run_id;
    wait_state(&mut c, bobs, false).await;
    let waiting = wait_for(LIMIT, "the quota reason", || {
        let mut c = c.clone();
        async move {
            let run = run_of(&mut c, second).await.expect("get run");
            run.pending_reason
                .clone()
                .filter(|r| r.contains("quota"))
                .map(|_| run)
        }
    })
    .await;
    assert_eq!(waiting.state(), v1::RunState::Queued);
    assert_eq!(
        waiting.pending_reason.as_deref(),
        Some("user ada at GPU quota 1/1")
    );
    // Her first run ends: the second starts.
    let cancel = |run: u64| v1::CancelRunRequest {
        target: Some(v1::cancel_run_request::Target::RunId(run)),
        reason: None,
    };
    c.cancel_run(as_user("t-ada", cancel(first)))
        .await
        .expect("cancel");
    wait_state(&mut c, second, false).await;
    for run in [second, bobs] {
        c.cancel_run(as_user("t-root", cancel(run)))
            .await
            .expect("cancel");
    }
}
