//! The watched folders end to end: real `notify` watchers on temp folders, a daemon over the
//! in-memory store with the no-op executor; every wait is bounded by a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cauda_plugins::spec::MAX_SPEC_BYTES;

use super::*;
use crate::core::{DaemonSettings, NoopExecutor, SystemClock};
use crate::model::ExperimentId;
use crate::store::{MemoryStore, Store};

const DEADLINE: Duration = Duration::from_secs(4);

fn daemon() -> (Arc<Daemon>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let daemon = Daemon::new(
        store.clone(),
        DaemonSettings::default(),
        Arc::new(SystemClock),
        Arc::new(NoopExecutor),
    );
    (Arc::new(daemon), store)
}

fn spec(name: &str, method: &str) -> String {
    format!(
        "name = \"{name}\"\nmethod = \"{method}\"\n[data]\nformat = \"digits\"\n\
         imbalance = {{ profile = \"exp\", ratio = 10 }}\n[train]\nepochs = 1\n"
    )
}

/// A spec whose `train.epochs` (line 5) is out of range.
const BAD_EPOCHS: &str =
    "name = \"bad\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n[train]\nepochs = 0\n";

fn config(inbox: Option<&Path>, presets: Option<&Path>) -> DaemonConfig {
    DaemonConfig {
        inbox: inbox.map(Path::to_path_buf),
        presets: presets.map(Path::to_path_buf),
        ..DaemonConfig::default()
    }
}

/// Polls `done` until it holds; fails the test at the deadline.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn experiments(store: &MemoryStore) -> Vec<crate::model::ExperimentRecord> {
    store.list_experiments(None, None).expect("list")
}

#[test]
fn a_dropped_spec_is_submitted_as_its_owner_and_moved_to_submitted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    let (daemon, store) = daemon();
    let _folders = start(&config(Some(&inbox), None), daemon).expect("start");
    std::fs::write(inbox.join("drop.toml"), spec("drop", "ce")).expect("write");
    let moved = inbox.join(SUBMITTED).join("drop.toml");
    wait_for("submitted/drop.toml", || moved.exists());
    assert!(!inbox.join("drop.toml").exists());
    let stored = experiments(&store);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "drop");
    assert!(!stored[0].user.is_empty());
    #[cfg(unix)]
    assert_ne!(
        stored[0].user, FALLBACK_USER_FOR_TESTS,
        "the owner has a name here"
    );
}

/// Every test machine knows the owner of its temp files (root or the CI user).
#[cfg(unix)]
const FALLBACK_USER_FOR_TESTS: &str = "inbox";

#[test]
fn an_invalid_spec_is_rejected_with_its_key_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    let (daemon, store) = daemon();
    let _folders = start(&config(Some(&inbox), None), daemon).expect("start");
    std::fs::write(inbox.join("bad.toml"), BAD_EPOCHS).expect("write");
    std::fs::write(inbox.join("syntax.toml"), "name = \"x\"\n[data\n").expect("write");
    let rejected = inbox.join(REJECTED);
    wait_for("both files in rejected/", || {
        rejected.join("bad.toml").exists() && rejected.join("syntax.toml").exists()
    });
    let error = std::fs::read_to_string(rejected.join("bad.toml.error")).expect("bad .error");
    assert!(
        error.starts_with("inbox/bad.toml: train.epochs: "),
        "{error}"
    );
    assert!(error.contains("key: train.epochs\n"), "{error}");
    let error = std::fs::read_to_string(rejected.join("syntax.toml.error")).expect(".error");
    assert!(error.contains("line: 2\n"), "{error}");
    assert!(experiments(&store).is_empty());
    assert!(!inbox.join("bad.toml").exists());
}

#[test]
fn files_present_before_start_are_taken_in_name_order_without_clobbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join(SUBMITTED)).expect("mkdir");
    std::fs::write(inbox.join(SUBMITTED).join("b.toml"), "an older b").expect("write");
    std::fs::write(inbox.join("b.toml"), spec("b", "ce")).expect("write");
    std::fs::write(inbox.join("a.toml"), spec("a", "focal")).expect("write");
    std::fs::write(inbox.join(".hidden.toml"), spec("hidden", "ce")).expect("write");
    std::fs::write(inbox.join("notes.txt"), "not a spec").expect("write");
    let (daemon, store) = daemon();
    let _folders = start(&config(Some(&inbox), None), daemon).expect("start");
    wait_for("two experiments", || experiments(&store).len() == 2);
    let stored = experiments(&store);
    let names: Vec<&str> = stored.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "taken in name order");
    let b_id: ExperimentId = stored[1].id;
    let tagged = inbox.join(SUBMITTED).join(format!("b.{b_id}.toml"));
    wait_for("b moved beside the older b", || tagged.exists());
    let older = std::fs::read_to_string(inbox.join(SUBMITTED).join("b.toml")).expect("older b");
    assert_eq!(older, "an older b");
    wait_for("a moved", || inbox.join(SUBMITTED).join("a.toml").exists());
    assert!(inbox.join(".hidden.toml").exists() && inbox.join("notes.txt").exists());
}

#[test]
fn an_oversized_binary_or_linked_file_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, store) = daemon();
    let mut inbox = Inbox::open(dir.path(), daemon).expect("open");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; MAX_SPEC_BYTES + 1]).expect("write");
    let Outcome::Rejected { problem, moved_to } = inbox.take(&big) else {
        panic!("an oversized spec must be rejected");
    };
    assert!(problem.reason.contains("the limit is"), "{problem:?}");
    assert!(moved_to.exists() && !big.exists());
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("write");
    assert!(matches!(inbox.take(&binary), Outcome::Rejected { .. }));
    assert!(matches!(inbox.take(&binary), Outcome::Left), "gone: left");
    #[cfg(unix)]
    {
        let secret = dir.path().join("secret");
        std::fs::write(&secret, spec("secret", "ce")).expect("write");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        assert!(
            matches!(inbox.take(&link), Outcome::Left),
            "links are not followed"
        );
        assert!(link.exists());
    }
    assert!(experiments(&store).is_empty());
}

#[test]
fn presets_reload_live_and_a_broken_file_keeps_the_previous_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("presets");
    let (daemon, _) = daemon();
    let _folders = start(&config(None, Some(&folder)), daemon.clone()).expect("start");
    let file = folder.join("mine.toml");
    let error_file = folder.join("mine.toml.error");
    let preset = |gamma: &str| {
        format!(
            "name = \"my-focal\"\n[rebalance]\nloss = {{ name = \"focal\", gamma = {gamma} }}\n"
        )
    };
    let has = |d: &Daemon| d.preset_names().iter().any(|n| n == "my-focal");
    let submit_gamma = |d: &Daemon| {
        let s = d.submit("t", &spec("t", "my-focal"), "ada", None)?;
        // A config trained before is reused rather than created again.
        let id = s.runs.first().or(s.reused.first()).map(|r| r.0);
        let id = id.ok_or_else(|| crate::core::CoreError::Internal("no run".into()))?;
        Ok::<_, crate::core::CoreError>(d.get_run(id)?.config_json)
    };

    std::fs::write(&file, preset("1.5")).expect("write");
    wait_for("my-focal loaded", || has(&daemon));
    let config = submit_gamma(&daemon).expect("a spec naming the new preset submits");
    assert!(config.contains("\"gamma\":1.5"), "{config}");

    std::fs::write(&file, preset("\"high\"")).expect("write");
    wait_for("mine.toml.error", || error_file.exists());
    let error = std::fs::read_to_string(&error_file).expect(".error");
    assert!(
        error.starts_with("presets/mine.toml: rebalance.loss"),
        "{error}"
    );
    let config = submit_gamma(&daemon).expect("the previous version is kept");
    assert!(config.contains("\"gamma\":1.5"), "{config}");

    std::fs::write(&file, preset("3.0")).expect("write");
    wait_for("the .error removed once fixed", || !error_file.exists());
    let config = submit_gamma(&daemon).expect("the fixed version");
    assert!(config.contains("\"gamma\":3.0"), "{config}");

    std::fs::remove_file(&file).expect("rm");
    wait_for("my-focal removed", || !has(&daemon));
    let err = submit_gamma(&daemon).expect_err("the preset is gone");
    assert!(
        matches!(err, crate::core::CoreError::InvalidSpec { ref key, .. } if key == "method"),
        "{err}"
    );
}

#[test]
fn a_preset_cannot_shadow_a_builtin_and_one_dropped_with_its_spec_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("presets");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("ce.toml"), "name = \"ce\"\n").expect("write");
    let (daemon, store) = daemon();
    let builtin = daemon.preset_names();
    let _folders = start(&config(Some(&inbox), Some(&folder)), daemon.clone()).expect("start");
    // The folder is loaded before `start` returns.
    let error = std::fs::read_to_string(folder.join("ce.toml.error")).expect(".error");
    assert!(
        error.contains("key: name\n") && error.contains("built in"),
        "{error}"
    );
    assert_eq!(daemon.preset_names(), builtin);

    std::fs::write(folder.join("lite.toml"), "name = \"lite\"\n").expect("write");
    std::fs::write(inbox.join("uses-lite.toml"), spec("uses-lite", "lite")).expect("write");
    // The inbox stores the experiment first and then moves the file: wait for both.
    let moved = inbox.join(SUBMITTED).join("uses-lite.toml");
    wait_for("uses-lite submitted", || {
        experiments(&store).len() == 1 && moved.exists()
    });
    assert!(inbox.join(SUBMITTED).join("uses-lite.toml").exists());
}

#[test]
fn the_inbox_and_the_presets_folder_must_differ() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, _) = daemon();
    let err = start(&config(Some(dir.path()), Some(dir.path())), daemon).expect_err("same");
    assert!(matches!(err, FolderError::SameFolder { .. }), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_folders_work_inside_a_single_threaded_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    let (daemon, store) = daemon();
    let folders = start(&config(Some(&inbox), None), daemon).expect("start");
    std::fs::write(inbox.join("rt.toml"), spec("rt", "ce")).expect("write");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while experiments(&store).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(folders);
}
