//! Authentication and ownership end to end: the real `caudad serve` with `[auth]` refuses calls
//! without a known bearer token, records runs under the caller, lets only the owner or an admin
//! cancel, and its real workers authenticate with per-attempt tokens that open nothing but their
//! own attempt. Without `[auth]`, `caudad serve` will not listen beyond loopback.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cauda_proto::v1::{self, cancel_run_request::Target, worker_client::WorkerClient};
use common::*;
use tonic::{Code, Request};

const LIMIT: Duration = Duration::from_secs(120);

fn submit_request(spec: &str, user: Option<&str>) -> v1::SubmitExperimentRequest {
    v1::SubmitExperimentRequest {
        spec_toml: spec.to_string(),
        source_name: Some("auth.toml".into()),
        user: user.map(str::to_string),
        ..Default::default()
    }
}

async fn get(
    client: &mut v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    id: u64,
) -> v1::Run {
    client
        .get_run(as_user("t-ada", v1::GetRunRequest { run_id: id }))
        .await
        .expect("get run")
        .into_inner()
        .run
        .expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_need_a_known_token_and_runs_belong_to_their_submitter() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &three_users_config());
    let mut client = daemon.client().await;
    let spec = tiny_spec("owned", 2, "");

    let err = client
        .list_runs(v1::ListRunsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = client
        .submit_experiment(as_user("t-eve", submit_request(&spec, None)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // Health stays open.
    let channel = tonic::transport::Endpoint::from_shared(daemon.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no token");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    // ada may not pose as bob; the admin may submit for anyone.
    let err = client
        .submit_experiment(as_user("t-ada", submit_request(&spec, Some("bob"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let by_root = client
        .submit_experiment(as_user("t-root", submit_request(&spec, Some("bob"))))
        .await
        .expect("admin submits for bob")
        .into_inner();
    assert_eq!(get(&mut client, by_root.runs[0].run_id).await.user, "bob");

    // ada's run is ada's, and it trains to the end: its worker authenticates with its token.
    // (Another seed: the same run would be reused, not trained again.)
    let spec = tiny_spec("owned", 2, "seed = 7\n");
    let submitted = client
        .submit_experiment(as_user("t-ada", submit_request(&spec, None)))
        .await
        .expect("ada submits")
        .into_inner();
    let id = submitted.runs[0].run_id;
    let ids = [id, by_root.runs[0].run_id];
    let runs = wait_for(LIMIT, "both runs to finish", || {
        let mut c = client.clone();
        async move {
            let mut done = Vec::new();
            for id in ids {
                let run = get(&mut c, id).await;
                if !is_terminal(run.state()) {
                    return None;
                }
                done.push(run);
            }
            Some(done)
        }
    })
    .await;
    for run in &runs {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        assert_eq!(run.epochs_done, 2);
    }
    assert_eq!(runs[0].user, "ada");
    let listed = client
        .list_runs(as_user(
            "t-bob",
            v1::ListRunsRequest {
                user: Some("ada".into()),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .runs;
    assert_eq!(listed.iter().map(|r| r.run_id).collect::<Vec<_>>(), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_an_admin_cancels_and_worker_tokens_open_only_their_run() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &three_users_config());
    let mut client = daemon.client().await;
    let long = tiny_spec("long", 10_000, "[sweep]\n\"train.seed\" = [1, 2]\n");
    let submitted = client
        .submit_experiment(as_user("t-ada", submit_request(&long, None)))
        .await
        .expect("ada submits")
        .into_inner();
    let (a, b) = (submitted.runs[0].run_id, submitted.runs[1].run_id);

    // Both run; each worker holds its own token in its environment (not on its command line).
    let workers = wait_for(LIMIT, "two workers", || {
        let w = daemon.workers();
        async move { (w.len() == 2).then_some(w) }
    })
    .await;
    let token_of = |run: u64| {
        let (pid, _, _) = workers.iter().find(|w| w.1 == run).expect("worker of run");
        let env = std::fs::read(format!("/proc/{pid}/environ")).expect("worker environ");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("worker cmdline");
        let token = env
            .split(|&c| c == 0)
            .find_map(|v| v.strip_prefix(b"CAUDA_WORKER_TOKEN="))
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .expect("CAUDA_WORKER_TOKEN set");
        assert!(!String::from_utf8_lossy(&cmdline).contains(&token));
        token
    };
    let (token_a, attempt_b) = (token_of(a), workers.iter().find(|w| w.1 == b).unwrap().2);
    let mut worker = WorkerClient::connect(daemon.url.clone()).await.unwrap();
    let heartbeat = |token: Option<&str>| {
        let message = v1::HeartbeatRequest {
            run_id: b,
            attempt: attempt_b,
            epoch: None,
        };
        match token {
            Some(t) => as_user(t, message),
            None => Request::new(message),
        }
    };
    let err = worker.heartbeat(heartbeat(None)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = worker
        .heartbeat(heartbeat(Some("t-ada")))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "a user token is no worker token"
    );
    let err = worker
        .heartbeat(heartbeat(Some(&token_a)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = worker
        .finish(as_user(
            &token_a,
            v1::FinishRequest {
                run_id: b,
                attempt: attempt_b,
                outcome: Some(v1::finish_request::Outcome::Failure(v1::FinishFailure {
                    message: "forged".into(),
                    oom: false,
                })),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(get(&mut client, b).await.state(), v1::RunState::Running);

    // bob may not cancel ada's runs, one by one or by experiment; nothing is cancelled.
    let err = client
        .cancel_run(as_user("t-bob", cancel_request(a)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let by_experiment = v1::CancelRunRequest {
        target: Some(Target::ExperimentId(submitted.experiment_id)),
        reason: None,
    };
    let err = client
        .cancel_run(as_user("t-bob", by_experiment))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(get(&mut client, a).await.state(), v1::RunState::Running);

    // ada cancels her own; the admin cancels the other.
    for (token, id) in [("t-ada", a), ("t-root", b)] {
        let done = client
            .cancel_run(as_user(token, cancel_request(id)))
            .await
            .expect("cancel")
            .into_inner();
        assert_eq!(done.cancelled_run_ids, [id]);
        assert_eq!(get(&mut client, id).await.state(), v1::RunState::Cancelled);
    }
}

#[test]
fn serve_refuses_a_public_address_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::caudad_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("caudad runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("allow_insecure_listen"), "{stderr}");
    assert!(stderr.contains("[auth]"), "{stderr}");
}

#[test]
fn hash_token_prints_the_sha256_of_stdin() {
    let mut child = Command::new(common::caudad_bin())
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("caudad runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"t-ada\n")
        .expect("write token");
    let out = child.wait_with_output().expect("hash-token ends");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        caudad::store::sha256_hex(b"t-ada")
    );
}

#[test]
fn the_cauda_client_sends_cauda_token() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &three_users_config());
    let ls = |token: Option<&str>| {
        let mut cmd = Command::new(&cli);
        cmd.args(["--addr", &daemon.url, "ls"])
            .env_remove("CAUDA_TOKEN");
        if let Some(t) = token {
            cmd.env("CAUDA_TOKEN", t);
        }
        cmd.output().expect("cauda runs")
    };
    let out = ls(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authorization"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ls(Some("t-ada"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
