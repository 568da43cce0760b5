//! The disk fills up under a real `caudad serve` (issue 6, item 5): its data dir is a small
//! tmpfs. Below the reserve, submissions and checkpoint uploads get RESOURCE_EXHAUSTED naming the
//! data dir, and the run whose checkpoint was refused fails with that reason, while a run that
//! only reports metrics goes on. Filled to the last byte, sled itself hits ENOSPC; the daemon
//! stays up and answers reads. Once space returns the daemon writes again without a restart,
//! the stuck run resumes and finishes, new work proceeds, and every acknowledged metric is
//! still stored, also after a restart on the same data. Needs root for `mount -t tmpfs` (CI
//! runs as root); skips through `common::require` where mounting is not permitted. `DISKFULL_LOG=1`
//! prints the daemon's log (its refusals and sled's errors) before the restart.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(120);
const RESERVE_MB: u64 = 8;

/// A tmpfs mounted on a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mb: u64) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}M"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Self(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(dir).expect("statvfs");
    s.blocks_available().saturating_mul(s.fragment_size())
}

/// Writes zeros to `path` until only about `leave` bytes are free; `0` fills the disk to its
/// last page.
fn fill(path: &Path, leave: u64) {
    let dir = path.parent().expect("parent");
    let mut file = std::fs::File::create(path).expect("create filler");
    for size in [64 << 10, 4 << 10] {
        let block = vec![0u8; size];
        while free_bytes(dir) > leave + block.len() as u64 || leave == 0 {
            if file.write_all(&block).is_err() {
                break;
            }
        }
    }
    let _ = file.sync_all();
}

/// Every stored epoch of `ids`: (run, epoch) -> raw JSON.
async fn stored(daemon: &Caudad, ids: &[u64]) -> BTreeMap<(u64, u32), String> {
    let mut client = daemon.client().await;
    let mut out = BTreeMap::new();
    for &id in ids {
        for m in epochs(&mut client, id).await {
            out.insert((id, m.epoch), m.raw_json);
        }
    }
    out
}

fn assert_kept(acknowledged: &BTreeMap<(u64, u32), String>, now: &BTreeMap<(u64, u32), String>) {
    for (key, json) in acknowledged {
        assert_eq!(now.get(key), Some(json), "acknowledged metric {key:?} kept");
    }
}

async fn submit_one(
    client: &mut v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    spec: &str,
) -> Result<u64, tonic::Status> {
    client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: spec.to_string(),
            source_name: Some("diskfull.toml".into()),
            user: Some("tester".into()),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().runs[0].run_id)
}

async fn epochs_at_least(daemon: &Caudad, id: u64, n: usize) {
    wait_for(LIMIT, "training progress", || async move {
        let mut client = daemon.client().await;
        (epochs(&mut client, id).await.len() >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_and_the_daemon_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mount = match Tmpfs::mount(dir.path(), 64) {
        Ok(m) => m,
        Err(why) => {
            skip(
                &format!("cannot mount a tmpfs here ({why})"),
                "run it as root, as CI does",
            );
            return;
        }
    };
    let config = format!(
        "devices = [\"cpu:2\"]\nmax_retries = 2\nheartbeat_timeout_ms = 3000\nmin_free_disk_mb = {RESERVE_MB}\n"
    );
    let mut daemon = Caudad::start(dir.path(), &config);
    let data_dir = dir.path().join("data");
    let mut client = daemon.client().await;

    // Acknowledged work before the disk fills.
    let warm = submit_one(&mut client, &tiny_spec("warm", 3, ""))
        .await
        .unwrap();
    let runs = wait_all_done(&mut client, &[warm], LIMIT).await;
    assert_finished_once(&mut client, &runs[0], 3).await;
    // B checkpoints every epoch; L only at its end, so only its metrics need space.
    let b = submit_one(&mut client, &tiny_spec("ckpt", 2000, ""))
        .await
        .unwrap();
    let l_spec =
        tiny_spec("metrics-only", 5000, "").replace("checkpoint_every = 1", "checkpoint_every = 0");
    let l = submit_one(&mut client, &l_spec).await.unwrap();
    let cancel = |id| v1::CancelRunRequest {
        target: Some(v1::cancel_run_request::Target::RunId(id)),
        ..Default::default()
    };
    epochs_at_least(&daemon, b, 2).await;
    epochs_at_least(&daemon, l, 2).await;

    // Below the reserve: new work and checkpoints are refused with a clear error.
    fill(&dir.path().join("filler-1"), (RESERVE_MB << 20) / 2);
    let err = submit_one(&mut client, &tiny_spec("refused", 3, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("no space left on device"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains(&data_dir.display().to_string()),
        "names the data dir: {}",
        err.message()
    );
    let failed = wait_all_done(&mut client, &[b], LIMIT).await;
    assert_eq!(failed[0].state(), v1::RunState::Failed, "{:?}", failed[0]);
    let reason = failed[0].error.clone().unwrap_or_default();
    assert!(
        reason.contains("no space left on device"),
        "B fails with the reason: {reason}"
    );
    // L still stores its metrics from the reserve.
    let before = epochs(&mut client, l).await.len();
    epochs_at_least(&daemon, l, before + 2).await;

    // Filled to the last byte: sled's own writes fail; the daemon stays up and answers reads.
    let acknowledged = stored(&daemon, &[warm, b, l]).await;
    let l_attempt = get_run(&mut client, l).await.attempt;
    fill(&dir.path().join("filler-2"), 0);
    wait_for(LIMIT, "sled to hit the full disk", || async {
        let log = daemon
            .stderr
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        log.contains("the disk is full").then_some(())
    })
    .await;
    assert_eq!(
        get_run(&mut client, warm).await.state(),
        v1::RunState::Succeeded
    );
    assert!(
        epochs(&mut client, warm).await.len() == 3,
        "reads still answer"
    );
    let err = submit_one(&mut client, &tiny_spec("refused-2", 3, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    // Space returns: writes resume without a restart; L resumes and finishes; new work runs.
    std::fs::remove_file(dir.path().join("filler-1")).unwrap();
    std::fs::remove_file(dir.path().join("filler-2")).unwrap();
    let fresh = wait_for(LIMIT, "a submission to be accepted again", || {
        let mut c = client.clone();
        async move { submit_one(&mut c, &tiny_spec("after", 3, "")).await.ok() }
    })
    .await;
    // L's worker was refused a write and ended; its attempt is retried and trains on.
    let resumed_from = stored(&daemon, &[l]).await.len();
    wait_for(LIMIT, "the refused run to resume", || {
        let mut c = client.clone();
        async move {
            let run = get_run(&mut c, l).await;
            (run.state() == v1::RunState::Running
                && run.attempt > l_attempt
                && epochs(&mut c, l).await.len() >= resumed_from + 2)
                .then_some(())
        }
    })
    .await;
    client.cancel_run(cancel(l)).await.expect("cancel L");
    let done = wait_all_done(&mut client, &[fresh, l], LIMIT).await;
    assert_finished_once(&mut client, &done[0], 3).await;
    assert_kept(&acknowledged, &stored(&daemon, &[warm, b, l]).await);

    if std::env::var_os("DISKFULL_LOG").is_some() {
        let log = daemon
            .stderr
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        eprintln!(
            "{log}\nB: {reason}\nacknowledged {} metrics",
            acknowledged.len()
        );
    }
    // A restart on the same data sees every acknowledged run and metric.
    let before_restart = stored(&daemon, &[warm, b, l, fresh]).await;
    daemon.kill9();
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;
    assert_kept(&acknowledged, &stored(&daemon, &[warm, b, l]).await);
    assert_kept(
        &before_restart,
        &stored(&daemon, &[warm, b, l, fresh]).await,
    );
    assert_eq!(
        get_run(&mut client, fresh).await.state(),
        v1::RunState::Succeeded
    );
    assert_eq!(get_run(&mut client, b).await.state(), v1::RunState::Failed);
    drop(daemon);
    drop(mount);
}
