//! An engine upgrade through the real store, core and gRPC API: runs stored by older engines (one
//! before fingerprints, one of an older recipe) are not reused by a new submission of the same
//! spec, a finished one is reported and shown as older, and an unfinished one fails at start-up
//! with the reason. The `cauda` binary shows the engine and renders the report in every format.

use crate::common;

use std::sync::Arc;

use cauda_plugins::spec::ResolvedRun;
use cauda_plugins::train::{config_hash, engine_fingerprint};
use cauda_proto::v1;
use caudad::core::{Clock, Ending};
use caudad::model::{Millis, RunId, RunState};
use caudad::store::{SledStore, Store, StoreConfig, WriteOp};
use common::*;

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> Millis {
        1_000
    }
}

const OLDER: &str = "cauda-plugins 0.1.0 recipe 1";

const SUMMARY: &str = r#"{"method":"ce","class_counts":[5,1],"split_hash":"h","epochs":1,
    "best_test_top1":0.5,"val_selected_top1":null,"images_per_sec":100.0,
    "last":{"test_top1":0.5,"many":0.7,"medium":0.4,"few":0.2,"per_class":[]}}"#;

/// Rewrites a stored run as an older engine stored it: its config resolved for `engine` (empty:
/// before fingerprints, no `engine` key) and the hash that engine computed.
fn store_as_older(store: &SledStore, id: RunId, engine: &str) {
    let mut run = store.get_run(id).unwrap().unwrap();
    let mut config = ResolvedRun::from_json("stored", &run.config_json).unwrap();
    config.engine = engine.to_string();
    run.config_json = config.to_json();
    run.config_hash = config_hash(&config);
    run.engine = engine.to_string();
    store.commit(&[WriteOp::PutRun(run)]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_older_engines_are_not_reused_and_are_reported_as_older() {
    let dir = tempfile::tempdir().unwrap();
    let devices = ["cpu:1".to_string()];
    let spec = tiny_spec("upgrade", 1, "[sweep]\n\"train.seed\" = [1, 2]\n");

    // The daemon before the upgrade: seed 1 succeeds, seed 2 is running when it stops.
    let before = InProcess::daemon(dir.path(), &devices, Arc::new(FixedClock));
    let submitted = before.submit("upgrade.toml", &spec, "alice", None).unwrap();
    let (first, second) = (submitted.runs[0].0, submitted.runs[1].0);
    before
        .finish(
            first,
            1,
            Ending::Succeeded(Box::new(serde_json::from_str(SUMMARY).unwrap())),
        )
        .unwrap();
    assert_eq!(before.get_run(second).unwrap().state, RunState::Running);
    drop(before);
    let store = SledStore::open(dir.path().join("db"), StoreConfig::default()).unwrap();
    store_as_older(&store, first, "");
    store_as_older(&store, second, OLDER);
    let stored_hash = store.get_run(first).unwrap().unwrap().config_hash;
    drop(store);

    // The upgraded daemon restarts: the running run of the older recipe cannot go on.
    let after = InProcess::daemon(dir.path(), &devices, Arc::new(FixedClock));
    assert!(after.recover().unwrap().is_empty(), "nothing to resume");
    let failed = after.get_run(second).unwrap();
    assert_eq!(failed.state, RunState::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains(&format!("planned for {OLDER}"))
            && error.contains(&engine_fingerprint())
            && error.contains("resubmit"),
        "{error}"
    );
    let server = InProcess::serve(after).await;
    let mut client = server.client().await;

    // Shown with its engine, older.
    let run = get_run(&mut client, first.0).await;
    assert_eq!((run.engine.as_str(), run.older_engine), ("", true));
    assert_eq!(
        run.config_hash, stored_hash,
        "a finished run keeps its identity"
    );
    assert_eq!(get_run(&mut client, second.0).await.engine, OLDER);

    // The same spec again trains anew with this engine: nothing stored is reused.
    let again = submit(&mut client, &spec).await;
    assert_eq!(again.runs.len(), 2);
    assert!(again.runs.iter().all(|r| !r.reused), "{:?}", again.runs);
    for r in &again.runs {
        let run = get_run(&mut client, r.run_id).await;
        assert_eq!(
            (run.engine.as_str(), run.older_engine),
            (engine_fingerprint().as_str(), false)
        );
        assert_ne!(run.config_hash, stored_hash);
    }

    // The old experiment's row is marked older, with both engines; the new one's is current.
    let report = |id: u64| {
        let mut client = client.clone();
        async move {
            client
                .get_report(v1::GetReportRequest { experiment_id: id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let old = report(submitted.experiment.0).await;
    assert_eq!(old.engine, engine_fingerprint());
    assert_eq!(old.rows.len(), 1);
    let row = &old.rows[0];
    assert!(row.older_engine);
    assert_eq!(row.engines, ["", OLDER]);
    assert_eq!((row.runs, row.succeeded, row.failed), (2, 1, 1));
    assert_eq!(row.top1_mean, Some(0.5));
    let new = report(again.experiment_id).await;
    assert!(!new.rows[0].older_engine);
    assert_eq!(new.rows[0].engines, [engine_fingerprint()]);

    // Through the cauda binary: `show` names the engine, every report format renders the row.
    let Some(cli) = cauda_bin() else {
        server.shutdown().await;
        return;
    };
    let addr = format!("http://{}", server.addr);
    let show = cauda_ok(&cli, &addr, &["show", &format!("r-{}", first.0)]);
    assert!(
        show.contains("engine:       before fingerprints (older than the daemon's engine)\n"),
        "{show}"
    );
    let show = cauda_ok(
        &cli,
        &addr,
        &["show", &format!("r-{}", again.runs[0].run_id)],
    );
    assert!(
        show.contains(&format!("engine:       {}\n", engine_fingerprint())),
        "{show}"
    );
    let e1 = format!("e-{}", submitted.experiment.0);
    let table = cauda_ok(&cli, &addr, &["report", &e1]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[1].starts_with("method") && lines[1].ends_with("engine"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("ce ") && lines[2].ends_with("older"),
        "{table}"
    );
    let current = cauda_ok(&cli, &addr, &["report", &e1, "--engine", "current"]);
    assert_eq!(current.lines().nth(2), Some(""), "no rows: {current}");
    let markdown = cauda_ok(&cli, &addr, &["report", &e1, "--format", "markdown"]);
    let md: Vec<&str> = markdown.lines().collect();
    assert_eq!(
        md[0].matches(" | ").count(),
        md[2].matches(" | ").count(),
        "{markdown}"
    );
    let csv = cauda_ok(&cli, &addr, &["report", &e1, "--format", "csv"]);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(&format!(",\"; {OLDER}\",true,")),
        "engines, then older_engine: {csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cauda_ok(&cli, &addr, &["report", &e1, "--format", "json"])).unwrap();
    assert_eq!(json["rows"][0]["engines"], serde_json::json!(["", OLDER]));
    assert_eq!(json["rows"][0]["older_engine"], true);
    server.shutdown().await;
}
