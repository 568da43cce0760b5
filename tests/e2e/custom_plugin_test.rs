//! Extending cauda without forking it, end to end: `caudad-seql`, the daemon binary of
//! `examples/custom-plugin/` (cauda's crates plus a loss and a preset registered through the
//! public registry), serves them to the real `cauda` client and trains a study with them in
//! its own workers; the stock `caudad` refuses the preset, naming the ones it has.

use crate::common;

use std::time::Duration;

use cauda_plugins::train::engine_fingerprint;
use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(180);
/// The example crate as its runs name it (`cauda_custom_plugin::ORIGIN`).
const ORIGIN: &str = "cauda-custom-plugin 0.1.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_built_by_another_crate_serves_and_trains_its_plugins() {
    let Some(cli) = cauda_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start_program(
        &caudad_seql_bin(),
        dir.path(),
        "devices = [\"cpu:2\"]\nmax_retries = 0\n",
        "127.0.0.1:0",
        &[],
    );

    // `cauda plugins` lists the new loss under its family, with its paper.
    let listed: serde_json::Value =
        serde_json::from_str(&cauda_ok(&cli, &daemon.url, &["plugins", "--json"])).unwrap();
    let seql = listed["plugins"]
        .as_array()
        .expect("a JSON array of plugins")
        .iter()
        .find(|p| p["name"] == "seql")
        .unwrap_or_else(|| panic!("seql is listed: {listed}"));
    // Its preset is listed among the methods, with its place in the survey's taxonomy.
    let method = listed["methods"]
        .as_array()
        .expect("a JSON array of methods")
        .iter()
        .find(|m| m["name"] == "seql")
        .unwrap_or_else(|| panic!("the seql preset is listed: {listed}"));
    assert_eq!(method["subfamily"], "class-sensitive-learning", "{method}");
    assert_eq!(seql["family"], "loss", "{seql}");
    assert!(
        seql["paper"]
            .as_str()
            .is_some_and(|p| p.contains("Equalization Loss")),
        "{seql}"
    );
    let table = cauda_ok(&cli, &daemon.url, &["plugins", "--family", "loss"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("seql") && l.contains("Tan et al.")),
        "{table}"
    );

    // A small study: cauda's ce beside the crate's preset, same seed and batches.
    let spec = tiny_spec("eq", 2, "[sweep]\nmethod = [\"ce\", \"seql\"]\n");
    let mut client = daemon.client().await;
    let ids = submit_ids(&mut client, &spec).await;
    assert_eq!(ids.len(), 2);
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let mut first_losses = Vec::new();
    for run in &runs {
        assert_eq!(
            run.state(),
            v1::RunState::Succeeded,
            "{}: {:?}",
            run.name,
            run.error
        );
        let last = run.summary.as_ref().and_then(|s| s.last.as_ref()).unwrap();
        // Two epochs of an MLP: the summary is whole, not a good model.
        assert!(
            (0.0..=1.0).contains(&last.test_top1) && last.many.is_some() && last.few.is_some(),
            "{}: {last:?}",
            run.name
        );
        assert_eq!(last.per_class.len(), 10, "{}", run.name);
        assert!(!run.older_engine, "{}: this daemon trains it", run.name);
        let metrics = epochs(&mut client, run.run_id).await;
        assert_eq!(metrics.len(), 2, "{}", run.name);
        first_losses.push(metrics[0].train_loss);
    }
    let (ce, seql) = (&runs[0], &runs[1]);
    assert_eq!(
        (ce.name.as_str(), seql.name.as_str()),
        ("eq/method=ce", "eq/method=seql")
    );
    // Runs of cauda's own plugins keep cauda's fingerprint; the crate's name its crate, in
    // the stored engine and in the hashed config.
    assert_eq!(ce.engine, engine_fingerprint());
    assert_eq!(seql.engine, format!("{} + {ORIGIN}", engine_fingerprint()));
    assert!(seql.config_json.contains(ORIGIN), "{}", seql.config_json);
    assert!(!ce.config_json.contains("extensions"), "{}", ce.config_json);
    // The worker trained with the crate's loss: same init, same batches, another loss.
    assert_ne!(first_losses[0], first_losses[1], "{first_losses:?}");
    let logs = cauda_ok(&cli, &daemon.url, &["logs", &format!("r-{}", seql.run_id)]);
    assert!(logs.contains("epoch 2/2 stage 1"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_daemon_refuses_the_crate_s_preset_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\n");
    let mut client = daemon.client().await;
    let refused = |spec: String| {
        let mut client = client.clone();
        async move {
            client
                .submit_experiment(v1::SubmitExperimentRequest {
                    spec_toml: spec,
                    source_name: Some("eq.toml".into()),
                    user: Some("tester".into()),
                    ..Default::default()
                })
                .await
                .expect_err("refused")
        }
    };
    let preset = tiny_spec("eq", 1, "").replace("method = \"ce\"", "method = \"seql\"");
    let status = refused(preset).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("unknown preset `seql`")
            && message.contains("allowed:")
            && message.contains("ldam-drw"),
        "{message}"
    );
    let loss = tiny_spec(
        "eq",
        1,
        "[rebalance]\nloss = { name = \"seql\", lambda = 0.05 }\n",
    );
    let status = refused(loss).await;
    let message = status.message();
    assert!(
        message.contains("unknown Loss plugin `seql`") && message.contains("balanced-softmax"),
        "{message}"
    );
    // Nothing was stored.
    let listed = client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.runs.is_empty(), "{:?}", listed.runs);
}
