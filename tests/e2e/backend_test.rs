//! Training backends through the real `caudad serve` binary: a spec naming a backend this caudad
//! was not built with is rejected at submission with the reason and nothing is stored; a run
//! without one gets the default where it is placed, stored with it, and its worker trains on
//! it; `ListPlugins` names the built backends.

use crate::common;

use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A backend this test binary's caudad lacks (its cargo features are the test's).
fn unbuilt() -> Option<&'static str> {
    [
        ("tch", cfg!(feature = "tch")),
        ("vulkan", cfg!(feature = "vulkan")),
    ]
    .into_iter()
    .find(|(_, built)| !built)
    .map(|(name, _)| name)
}

fn built() -> Vec<&'static str> {
    let mut out = vec!["flex"];
    if cfg!(feature = "tch") {
        out.push("tch");
    }
    if cfg!(feature = "vulkan") {
        out.push("vulkan");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbuilt_backend_is_rejected_at_submission_and_nothing_is_stored() {
    let Some(missing) = unbuilt() else {
        println!("skipped: this caudad is built with every backend");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\", \"gpu:0\"]\n");
    let mut client = daemon.client().await;
    let built = built().join(", ");

    let one = tiny_spec(
        "one",
        1,
        &format!("[resources]\ngpus = 1\nbackend = \"{missing}\"\n"),
    );
    // One bad grid point of two: nothing of the experiment is stored either.
    let grid = tiny_spec(
        "grid",
        1,
        &format!("[sweep]\n\"resources.backend\" = [\"flex\", \"{missing}\"]\n"),
    );
    for spec in [one, grid] {
        let err = client
            .submit_experiment(v1::SubmitExperimentRequest {
                spec_toml: spec.clone(),
                ..Default::default()
            })
            .await
            .expect_err("an unbuilt backend");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        let detail = cauda_proto::spec_error_from_status(&err).expect("spec error details");
        assert_eq!(detail.key, "resources.backend", "{detail:?}");
        assert_eq!(
            detail.reason,
            format!(
                "backend '{missing}' is not built into this caudad (built: {built}); rebuild with --features {missing}"
            )
        );
        let line = detail.line.expect("the line") as usize;
        assert!(
            spec.lines().nth(line - 1).unwrap().contains("backend"),
            "line {line} of\n{spec}"
        );
    }
    let runs = client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(runs.is_empty(), "{runs:?}");

    // A misspelt backend is a spec error naming the allowed ones.
    let err = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: tiny_spec("typo", 1, "[resources]\nbackend = \"cuda\"\n"),
            ..Default::default()
        })
        .await
        .expect_err("unknown backend");
    let detail = cauda_proto::spec_error_from_status(&err).expect("spec error details");
    assert_eq!(detail.key, "resources.backend", "{detail:?}");
    assert!(
        detail.reason.contains("flex") && detail.reason.contains("vulkan"),
        "{detail:?}"
    );

    let plugins = client
        .list_plugins(v1::ListPluginsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plugins.backends, self::built());
    assert!(!plugins.backends.contains(&missing.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_get_the_default_backend_of_their_placement_and_train_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec("cpu", 1, "[sweep]\n\"train.seed\" = [1, 2]\n");
    let ids = submit_ids(&mut client, &spec).await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        let stored = get_run(&mut client, run.run_id).await;
        let config: serde_json::Value = serde_json::from_str(&stored.config_json).unwrap();
        assert_eq!(config["resources"]["backend"], "flex", "{config}");
        let lines = log_lines(&events(&mut client, run.run_id).await);
        assert!(
            lines.iter().any(|l| l == "backend flex on Cpu"),
            "the worker says what it trains on: {lines:?}"
        );
    }
    // The same run naming its backend is the same run: the backend is not part of its identity.
    let explicit = tiny_spec(
        "explicit",
        1,
        "[resources]\nbackend = \"flex\"\n[sweep]\n\"train.seed\" = [1]\n",
    );
    let again = submit(&mut client, &explicit).await;
    assert_eq!(again.runs.len(), 1, "{again:?}");
    assert!(again.runs[0].reused, "{again:?}");
    assert_eq!(again.runs[0].run_id, ids[0], "{again:?}");
}
