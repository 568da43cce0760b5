//! Data roots end to end: the real `caudad serve` with `data_roots` set, specs submitted over
//! gRPC. Escapes (`..`, a symlink leading outside) are refused at submission with
//! INVALID_ARGUMENT naming `data.path` and the roots, and nothing is stored; paths under a root
//! (directly or through a symlink that stays inside) train in a real worker; a symlink swapped
//! to point outside after submission is refused by the worker before it opens the data.

use crate::common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use cauda_proto::v1::{self, cancel_run_request::Target};
use common::*;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(120);

/// The spec error of a refused submission (INVALID_ARGUMENT with details).
async fn refused(
    client: &mut v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    spec: &str,
) -> v1::SpecError {
    let status = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: spec.to_string(),
            source_name: Some("escape.toml".into()),
            user: Some("tester".into()),
            ..Default::default()
        })
        .await
        .expect_err("the submission is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    cauda_proto::spec_error_from_status(&status).expect("spec error details")
}

async fn stored_runs(
    client: &mut v1::cauda_client::CaudaClient<tonic::transport::Channel>,
) -> usize {
    client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .expect("list runs")
        .into_inner()
        .runs
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_are_refused_at_submission_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_idx(&root.join("mnist"));
    write_idx(&dir.path().join("outside/mnist"));
    symlink(dir.path().join("outside/mnist"), root.join("escape")).unwrap();
    let config = format!(
        "devices = [\"cpu:1\"]\ndata_roots = [\"{}\"]\n",
        root.display()
    );
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;

    let err = refused(
        &mut client,
        &idx_spec("dotdot", &root.join("../outside/mnist")),
    )
    .await;
    assert_eq!(err.key, "data.path");
    assert!(err.reason.contains("`..`"), "{}", err.reason);
    assert!(
        err.reason.contains(&root.display().to_string()),
        "{}",
        err.reason
    );

    let err = refused(&mut client, &idx_spec("symlink", &root.join("escape"))).await;
    assert_eq!(err.key, "data.path");
    assert!(
        err.reason.contains("outside the data roots"),
        "{}",
        err.reason
    );
    assert!(
        err.reason.contains(&root.display().to_string()),
        "{}",
        err.reason
    );

    // One bad grid point refuses the whole experiment.
    let grid = format!(
        "{}[sweep]\n\"data.path\" = [\"{}\", \"{}\"]\n",
        idx_spec("grid", &root.join("mnist")),
        root.join("mnist").display(),
        dir.path().join("outside/mnist").display()
    );
    let err = refused(&mut client, &grid).await;
    assert_eq!(err.key, "data.path");

    assert_eq!(stored_runs(&mut client).await, 0, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_under_a_root_train_and_a_swapped_symlink_is_caught_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_idx(&root.join("mnist"));
    write_idx(&dir.path().join("outside/mnist"));
    let alias = root.join("alias");
    symlink(root.join("mnist"), &alias).unwrap();
    let config = format!(
        "devices = [\"cpu:1\"]\nmax_retries = 0\ndata_roots = [\"{}\"]\n",
        root.display()
    );
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;

    // Directly under the root, and through a symlink that stays inside: both train.
    let direct = submit(&mut client, &idx_spec("direct", &root.join("mnist")))
        .await
        .runs[0]
        .run_id;
    let via = submit(&mut client, &idx_spec("via-link", &alias))
        .await
        .runs[0]
        .run_id;
    for run in wait_all_done(&mut client, &[direct, via], LIMIT).await {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
    }

    // A blocker holds the only slot while a run through a second link waits; the link is then
    // pointed outside, and the worker must refuse it when it finally starts.
    let blocker = submit(&mut client, &tiny_spec("blocker", 500, ""))
        .await
        .runs[0]
        .run_id;
    wait_for(LIMIT, "the blocker to run", || {
        let mut c = client.clone();
        async move {
            (get_run(&mut c, blocker).await.state() == v1::RunState::Running).then_some(())
        }
    })
    .await;
    let swapped = root.join("swapped");
    symlink(root.join("mnist"), &swapped).unwrap();
    let late = submit(&mut client, &idx_spec("late-swap", &swapped))
        .await
        .runs[0]
        .run_id;
    assert_eq!(
        get_run(&mut client, late).await.state(),
        v1::RunState::Queued
    );
    std::fs::remove_file(&swapped).unwrap();
    symlink(dir.path().join("outside/mnist"), &swapped).unwrap();
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(blocker)),
            reason: Some("test".into()),
        })
        .await
        .expect("cancel the blocker");
    let run = wait_all_done(&mut client, &[late], LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("data.path") && error.contains("outside the data roots"),
        "{error}"
    );
    assert!(
        epochs(&mut client, late).await.is_empty(),
        "nothing was trained"
    );
}
