//! Data-root checks on real directories and symlinks in a temporary folder.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

/// `tmp/root/data` (a data set), `tmp/outside/secret`, and roots = [tmp/root].
fn tree() -> (tempfile::TempDir, DataRoots) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("root/data")).expect("mkdir");
    std::fs::create_dir_all(tmp.path().join("outside/secret")).expect("mkdir");
    let roots = DataRoots::new(vec![tmp.path().join("root")]);
    (tmp, roots)
}

#[test]
fn a_path_under_a_root_is_allowed_and_resolved() {
    let (tmp, roots) = tree();
    let resolved = roots
        .check("data.path", &tmp.path().join("root/data"))
        .expect("allowed");
    let want = std::fs::canonicalize(tmp.path().join("root/data")).expect("canonical");
    assert_eq!(resolved, want);
    // Not there yet but under a root: allowed (the worker checks again when it opens it).
    assert!(
        roots
            .check("data.path", &tmp.path().join("root/later/x"))
            .is_ok()
    );
}

#[test]
fn dot_dot_is_rejected_naming_the_key_and_roots() {
    let (tmp, roots) = tree();
    let path = tmp.path().join("root/data/../../outside/secret");
    let err = roots.check("data.path", &path).unwrap_err();
    assert!(matches!(err, PathError::DotDot { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("data.path: ") && text.contains("`..`"),
        "{text}"
    );
    assert!(
        text.contains(&tmp.path().join("root").display().to_string()),
        "{text}"
    );
    // Even a `..` that would stay inside is refused: the rule is simple to state.
    let err = roots
        .check("data.path", &tmp.path().join("root/data/../data"))
        .unwrap_err();
    assert!(matches!(err, PathError::DotDot { .. }), "{err}");
}

#[test]
fn a_symlink_pointing_outside_is_rejected() {
    let (tmp, roots) = tree();
    let link = tmp.path().join("root/escape");
    symlink(tmp.path().join("outside/secret"), &link).expect("symlink");
    let err = roots.check("data.path", &link).unwrap_err();
    match &err {
        PathError::Outside { key, resolved, .. } => {
            assert_eq!(key, "data.path");
            assert!(resolved.ends_with("outside/secret"), "{resolved:?}");
        }
        other => panic!("expected Outside, got {other}"),
    }
    assert!(err.to_string().contains("data_roots"), "{err}");
    // A path through the link to something that does not exist yet escapes too.
    let err = roots.check("data.path", &link.join("not-yet")).unwrap_err();
    assert!(matches!(err, PathError::Outside { .. }), "{err}");
}

#[test]
fn a_symlink_inside_the_roots_is_fine() {
    let (tmp, roots) = tree();
    let link = tmp.path().join("root/alias");
    symlink(tmp.path().join("root/data"), &link).expect("symlink");
    let resolved = roots.check("data.path", &link).expect("allowed");
    assert!(resolved.ends_with("root/data"), "{resolved:?}");
    // A root that is itself reached through a symlink: paths resolve to its target.
    let via = tmp.path().join("via");
    symlink(tmp.path().join("root"), &via).expect("symlink");
    let roots = DataRoots::new(vec![via.clone()]);
    assert!(roots.check("data.path", &via.join("data")).is_ok());
    assert!(
        roots
            .check("data.path", &tmp.path().join("root/data"))
            .is_ok()
    );
}

#[test]
fn relative_and_outside_paths_are_rejected() {
    let (tmp, roots) = tree();
    let err = roots.check("data.path", Path::new("data")).unwrap_err();
    assert!(matches!(err, PathError::Relative { .. }), "{err}");
    let err = roots
        .check("data.path", &tmp.path().join("outside"))
        .unwrap_err();
    assert!(matches!(err, PathError::Outside { .. }), "{err}");
    // A sibling whose name merely starts with the root's is outside (component-wise compare).
    std::fs::create_dir_all(tmp.path().join("rootless")).expect("mkdir");
    let err = roots
        .check("data.path", &tmp.path().join("rootless"))
        .unwrap_err();
    assert!(matches!(err, PathError::Outside { .. }), "{err}");
    let none = DataRoots::new(Vec::new());
    assert!(
        none.check("data.path", &tmp.path().join("root/data"))
            .is_err()
    );
}

#[test]
fn the_error_maps_to_an_invalid_spec_naming_the_key() {
    let (tmp, roots) = tree();
    let err: CoreError = roots
        .check("data.path", &tmp.path().join("outside"))
        .unwrap_err()
        .into();
    match err {
        CoreError::InvalidSpec { key, reason, line } => {
            assert_eq!((key.as_str(), line), ("data.path", None));
            assert!(reason.contains("outside the data roots"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn roots_travel_to_workers_as_json() {
    let roots = DataRoots::new(vec!["/a b".into(), "/c:d".into()]);
    let text = roots.to_env();
    let back: Vec<std::path::PathBuf> = serde_json::from_str(&text).expect("json");
    assert_eq!(back, roots.roots());
}

#[test]
fn a_split_file_outside_the_roots_is_rejected_naming_its_key() {
    let (tmp, roots) = tree();
    let text = format!(
        "name = \"s\"\n[data]\nformat = \"digits\"\nsplit_file = {:?}\n",
        tmp.path()
            .join("outside/secret/split.json")
            .display()
            .to_string()
    );
    let run = cauda_plugins::spec::ExperimentSpec::parse("s.toml", &text)
        .and_then(|s| {
            s.resolve(
                "s.toml",
                &cauda_plugins::spec::PresetBook::builtin(),
                &cauda_plugins::registry::builtin_registry(),
            )
        })
        .expect("resolves");
    let err = roots.check_run(&run).unwrap_err().to_string();
    assert!(err.starts_with("data.split_file:"), "{err}");
}

#[test]
fn pretrained_weights_outside_the_roots_are_rejected_naming_their_key() {
    let (tmp, roots) = tree();
    let text = format!(
        "name = \"p\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"resnet10\"\npretrained = {:?}\n",
        tmp.path()
            .join("outside/secret/resnet10.safetensors")
            .display()
            .to_string()
    );
    let run = cauda_plugins::spec::ExperimentSpec::parse("p.toml", &text)
        .and_then(|s| {
            s.resolve(
                "p.toml",
                &cauda_plugins::spec::PresetBook::builtin(),
                &cauda_plugins::registry::builtin_registry(),
            )
        })
        .expect("resolves");
    let err = roots.check_run(&run).unwrap_err().to_string();
    assert!(err.starts_with("model.pretrained:"), "{err}");
}
