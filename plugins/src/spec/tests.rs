//! Spec parsing, validation and grid expansion, on the issue's own example spec.

use super::*;
use crate::registry::builtin_registry;

const EXAMPLE: &str = r#"
name = "fmnist-lt"
method = "ldam-drw"
[data]
format = "idx"
path = "/usr/share/datasets/fashion-mnist"
imbalance = { profile = "exp", ratio = 100 }
max_per_class = 1000
val_per_class = 0
split_seed = 0
[model]
backbone = "lenet"
head = "linear"
[train]
epochs = 30
batch_size = 128
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }
schedule = { name = "cosine", warmup_epochs = 1 }
seed = 0
[resources]
gpus = 0
[sweep]
method = ["ce", "balanced-softmax", "ldam-drw", "crt"]
"train.seed" = [0, 1]
"#;

fn resolve(text: &str) -> Result<ResolvedRun> {
    let spec = ExperimentSpec::parse("spec.toml", text)?;
    spec.resolve("spec.toml", &PresetBook::builtin(), &builtin_registry())
}

fn single(text: &str) -> String {
    text.split("[sweep]").next().unwrap_or(text).to_string()
}

/// `expand_sweep` returns a spec without `[sweep]` as it is; a grid point is built through a
/// TOML value. The two must agree (or a grid point and the same run submitted alone would
/// differ): every example spec and this file's, without their grids, come back from that
/// detour unchanged.
#[test]
fn a_spec_without_a_grid_is_its_own_only_point() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut texts = vec![("EXAMPLE".to_string(), EXAMPLE.to_string())];
    for sub in [dir.clone(), dir.join("benchmarks")] {
        for entry in std::fs::read_dir(&sub).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                texts.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    let mut checked = 0;
    for (origin, text) in texts {
        let Ok(mut spec) = ExperimentSpec::parse(&origin, &text) else {
            continue; // caudad.toml
        };
        spec.sweep.clear();
        let through_toml: ExperimentSpec =
            toml::Value::try_from(&spec).unwrap().try_into().unwrap();
        let points = expand_sweep(&origin, &spec).unwrap();
        assert_eq!(points.len(), 1, "{origin}");
        assert!(points[0].coordinates.is_empty(), "{origin}");
        assert_eq!(points[0].spec, through_toml, "{origin}");
        assert_eq!(points[0].spec, spec, "{origin}");
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} example specs parsed");
}

#[test]
fn the_issue_example_expands_into_eight_resolved_runs() {
    let spec = ExperimentSpec::parse("spec.toml", EXAMPLE).unwrap();
    let runs = expand_sweep("spec.toml", &spec).unwrap();
    assert_eq!(runs.len(), 8);
    let names: Vec<_> = runs.iter().map(|r| r.spec.name.clone()).collect();
    assert!(
        names.contains(&"fmnist-lt/method=crt,train.seed=1".to_string()),
        "{names:?}"
    );
    for point in &runs {
        // The name is made from the coordinates, which say the same as values.
        assert_eq!(point.spec.name, point_name("fmnist-lt", &point.coordinates));
        let seed = point.coordinates.iter().find(|c| c.is_seed()).unwrap();
        assert_eq!(seed.value, point.spec.train.seed.to_string());
        let resolved = point
            .spec
            .resolve("spec.toml", &PresetBook::builtin(), &builtin_registry())
            .unwrap();
        assert_eq!(resolved.train.epochs, 30);
    }
}

#[test]
fn ldam_drw_resolves_to_its_papers_parts() {
    let run = resolve(&single(EXAMPLE)).unwrap();
    assert_eq!(run.loss.plugin, "ldam");
    assert_eq!(run.loss.get("s"), 30.0);
    assert_eq!(run.drw.as_ref().unwrap().get("start_fraction"), 0.8);
    assert_eq!(run.model.head, "cosine");
    assert_eq!(run.sampler.plugin, "instance");
}

#[test]
fn a_section_overrides_the_preset() {
    let text = single(EXAMPLE).replace(
        "[model]",
        "[rebalance]\nloss = { name = \"ldam\", s = 10 }\n[model]",
    );
    let run = resolve(&text).unwrap();
    assert_eq!(run.loss.get("s"), 10.0);
    assert_eq!(run.loss.get("max_m"), 0.5);
}

#[test]
fn ldam_without_the_cosine_classifier_is_an_error_naming_the_fix() {
    let text = single(EXAMPLE).replace(
        "method = \"ldam-drw\"",
        "method = \"ce\"\n[rebalance]\nloss = { name = \"ldam\" }",
    );
    let err = resolve(&text).unwrap_err().to_string();
    assert!(
        err.contains("rebalance.loss") && err.contains("classifier = { name = \"cosine\""),
        "{err}"
    );
    // With the cosine classifier (the ldam-drw preset's) it resolves.
    let ok = text.replace(
        "loss = { name = \"ldam\" }",
        "loss = { name = \"ldam\" }\n[module]\nclassifier = { name = \"cosine\", scale = 1.0 }",
    );
    assert_eq!(resolve(&ok).unwrap().model.head, "cosine");
}

#[test]
fn the_expert_presets_need_a_cifar_resnet_and_their_experts() {
    let on = |method: &str, backbone: &str, extra: &str| {
        single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{method}\""))
            .replace(
                "backbone = \"lenet\"",
                &format!("backbone = \"{backbone}\""),
            )
            .replace("[train]", &format!("{extra}[train]"))
    };
    for method in ["ride", "sade"] {
        let run = resolve(&on(method, "resnet32", "")).unwrap();
        assert_eq!((run.model.experts, run.model.head.as_str()), (3, "cosine"));
        assert_eq!(run.model.head_scale, 30.0);
        assert_eq!(run.backbone_kind().unwrap().experts(), 3);
        assert!(run.to_json().contains("\"experts\":3"), "{method}");
        // On LeNet the experts' classifier is refused, naming the backbones that have them.
        let err = resolve(&on(method, "lenet", "")).unwrap_err().to_string();
        assert!(
            err.contains("module.classifier") && err.contains("only the CIFAR ResNets"),
            "{err}"
        );
    }
    // The losses without experts: refused naming the classifier to add and the preset.
    let err = resolve(&on(
        "ce",
        "resnet32",
        "[rebalance]\nloss = { name = \"sade\" }\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("rebalance.loss")
            && err.contains("name = \"experts\", experts = 3")
            && err.contains("preset sade"),
        "{err}"
    );
    // SADE is three experts; RIDE takes 2 to 8.
    let two = "[module]\nclassifier = { name = \"experts\", experts = 2 }\n";
    assert!(resolve(&on("sade", "resnet32", two)).is_err());
    assert_eq!(
        resolve(&on("ride", "resnet32", two)).unwrap().model.experts,
        2
    );
    // A plain run's canonical JSON does not mention experts (its hash is unchanged).
    let plain = resolve(&on("ce", "resnet32", "")).unwrap();
    assert_eq!(plain.model.experts, 1);
    assert!(!plain.to_json().contains("experts"));
}

#[test]
fn bbn_needs_its_second_stream_and_two_branches_and_nothing_else_takes_them() {
    let on = |method: &str, backbone: &str, extra: &str| {
        single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{method}\""))
            .replace(
                "backbone = \"lenet\"",
                &format!("backbone = \"{backbone}\""),
            )
            .replace("[train]", &format!("{extra}[train]"))
    };
    let run = resolve(&on("bbn", "resnet32", "")).unwrap();
    assert!(run.model.bilateral);
    assert_eq!(run.model.head, "linear");
    assert_eq!(run.second_sampler.as_ref().unwrap().plugin, "reversed");
    assert_eq!(
        run.backbone_kind(),
        Some(crate::models::BackboneKind::Bilateral {
            blocks: 5,
            shortcut: crate::models::Shortcut::A
        })
    );
    let json = run.to_json();
    assert!(json.contains("\"bilateral\":true") && json.contains("\"second_sampler\""));
    // On LeNet the two branches are refused, naming the backbones that have them.
    let err = resolve(&on("bbn", "lenet", "")).unwrap_err().to_string();
    assert!(
        err.contains("module.classifier") && err.contains("only the CIFAR ResNets"),
        "{err}"
    );
    // The loss without the second stream, or without the branches: refused, saying what to add.
    let no_stream = "[rebalance]\nloss = \"bbn\"\n[module]\nclassifier = \"bilateral\"\n";
    let err = resolve(&on("ce", "resnet32", no_stream))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rebalance.second_sampler")
            && err.contains("second_sampler` (BBN's is \"reversed\"")
            && err.contains("preset bbn"),
        "{err}"
    );
    let no_branches = "[rebalance]\nloss = \"bbn\"\nsecond_sampler = \"reversed\"\n";
    let err = resolve(&on("ce", "resnet32", no_branches))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rebalance.loss") && err.contains("classifier = \"bilateral\""),
        "{err}"
    );
    // A second stream or the branches that no plugin reads are refused too.
    let unread = "[rebalance]\nsecond_sampler = \"reversed\"\n";
    let err = resolve(&on("ce", "resnet32", unread))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rebalance.second_sampler") && err.contains("neither the loss `ce`"),
        "{err}"
    );
    let idle = "[module]\nclassifier = \"bilateral\"\n";
    let err = resolve(&on("ce", "resnet32", idle))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("module.classifier") && err.contains("loss = \"bbn\""),
        "{err}"
    );
    let err = resolve(&on(
        "bbn",
        "resnet32",
        "[rebalance]\nsecond_sampler = \"nope\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("rebalance.second_sampler"), "{err}");
    // CMO: the mixer takes the stream; without it, refused naming the key and the preset.
    let cmo = resolve(&on("cmo", "lenet", "")).unwrap();
    assert_eq!(cmo.second_sampler.unwrap().plugin, "class-balanced");
    assert_eq!(cmo.mixer.unwrap().plugin, "cmo");
    let err = resolve(&on("ce", "lenet", "[augment]\nbatch = \"cmo\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rebalance.second_sampler") && err.contains("`cmo` trains on a second"),
        "{err}"
    );
    // A plain run's canonical JSON mentions neither (its hash is unchanged).
    let plain = resolve(&on("ce", "resnet32", "")).unwrap();
    assert!(!plain.to_json().contains("bilateral") && !plain.to_json().contains("second_sampler"));
}

#[test]
fn test_time_aggregation_is_sades_needs_experts_and_is_left_out_of_other_runs() {
    let on = |method: &str, backbone: &str, extra: &str| {
        single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{method}\""))
            .replace(
                "backbone = \"lenet\"",
                &format!("backbone = \"{backbone}\""),
            )
            .replace("[train]", &format!("{extra}[train]"))
    };
    // The preset sade turns it on with the reference's settings; the run's JSON carries them.
    let sade = resolve(&on("sade", "resnet32", "")).unwrap();
    assert_eq!(
        sade.test_time_aggregation,
        Some(TestTimeAggregation::default())
    );
    assert!(
        sade.to_json()
            .contains("\"test_time_aggregation\":{\"epochs\":5")
    );
    // A spec may change the settings, or turn it off (its run then hashes as before it existed).
    let ten = "[evaluation]\ntest_time_aggregation = { epochs = 10 }\n";
    assert_eq!(
        resolve(&on("sade", "resnet32", ten))
            .unwrap()
            .test_time_aggregation
            .map(|t| t.epochs),
        Some(10)
    );
    let off = "[evaluation]\ntest_time_aggregation = false\n";
    let plain = resolve(&on("sade", "resnet32", off)).unwrap();
    assert_eq!(plain.test_time_aggregation, None);
    assert!(!plain.to_json().contains("aggregation"));
    // RIDE's experts may be aggregated too, on request.
    let ride = resolve(&on(
        "ride",
        "resnet32",
        "[evaluation]\ntest_time_aggregation = true\n",
    ));
    assert!(ride.unwrap().test_time_aggregation.is_some());
    // A model without experts is refused when the spec resolves, naming the key and the fix.
    let err = resolve(&on(
        "ce",
        "lenet",
        "[evaluation]\ntest_time_aggregation = true\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("evaluation.test_time_aggregation")
            && err.contains("the model has 1")
            && err.contains("name = \"experts\", experts = 3")
            && err.contains("preset sade"),
        "{err}"
    );
    // So is a stage 2 that replaces the experts' classifiers, and an out-of-range setting.
    let ncm = "[module]\nstage2 = { name = \"ncm\" }\n";
    let err = resolve(&on("sade", "resnet32", ncm))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evaluation.test_time_aggregation: `ncm` replaces"),
        "{err}"
    );
    let bad = "[evaluation]\ntest_time_aggregation = { batch_size = 0 }\n";
    let err = resolve(&on("sade", "resnet32", bad))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evaluation.test_time_aggregation.batch_size: 0 is out of range"),
        "{err}"
    );
    // Other runs do not mention it: their config hashes are unchanged.
    assert!(
        !resolve(&on("ce", "lenet", ""))
            .unwrap()
            .to_json()
            .contains("aggregation")
    );
}

#[test]
fn bcl_needs_the_contrastive_classifier_and_plain_runs_keep_their_hash() {
    let on = |method: &str, extra: &str| {
        single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{method}\""))
            .replace("[train]", &format!("{extra}[train]"))
    };
    let run = resolve(&on("bcl", "")).unwrap();
    let want = crate::models::ContrastDesign {
        dim: 128,
        views: 2,
        centers: true,
    };
    assert_eq!(run.model.contrast, Some(want));
    assert_eq!(
        (run.model.head.as_str(), run.model.head_scale),
        ("cosine", 30.0)
    );
    assert!(
        run.to_json().contains("\"contrast\":{\"dim\":128"),
        "{}",
        run.to_json()
    );
    // BCL's loss without the views' embeddings and centers: refused, naming the fix.
    let bare = on("ce", "[rebalance]\nloss = { name = \"bcl\" }\n");
    let err = resolve(&bare).unwrap_err().to_string();
    assert!(
        err.contains("rebalance.loss")
            && err.contains("name = \"contrastive\", views = 2")
            && err.contains("no projection head")
            && err.contains("preset bcl"),
        "{err}"
    );
    let one_view = "[module]\nclassifier = { name = \"contrastive\", views = 1 }\n";
    let err = resolve(&on("bcl", one_view)).unwrap_err().to_string();
    assert!(err.contains("1 views"), "{err}");
    let no_centers = "[module]\nclassifier = { name = \"contrastive\", centers = 0 }\n";
    let err = resolve(&on("bcl", no_centers)).unwrap_err().to_string();
    assert!(err.contains("no class-center head"), "{err}");
    // Another run's canonical JSON does not mention the contrastive heads.
    assert!(
        !resolve(&on("ce", ""))
            .unwrap()
            .to_json()
            .contains("contrast")
    );
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let text = single(EXAMPLE).replace("batch_size = 128", "batchsize = 128");
    let err = resolve(&text).unwrap_err().to_string();
    assert!(
        err.contains("line 16") && err.contains("batchsize"),
        "{err}"
    );
    // A value of the wrong type names its dotted key, from the table above it.
    let text = single(EXAMPLE).replace("epochs = 30", "epochs = -1");
    match resolve(&text).unwrap_err() {
        SpecError::Invalid { key, message, .. } => {
            assert_eq!(key, "train.epochs");
            assert!(message.starts_with("line 15: "), "{message}");
        }
        other => panic!("{other}"),
    }
    // A missing section or key is named as the key that is missing.
    let err = ExperimentSpec::parse("s.toml", "name = \"x\"\nmethod = \"ce\"\n").unwrap_err();
    assert!(
        matches!(&err, SpecError::Invalid { key, .. } if key == "data"),
        "{err}"
    );
}

#[test]
fn out_of_range_values_name_the_key_and_the_range() {
    let err = resolve(&single(EXAMPLE).replace("ratio = 100", "ratio = 0.5"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.imbalance.ratio") && err.contains("allowed"),
        "{err}"
    );
    let err = resolve(&single(EXAMPLE).replace("lr = 0.05", "lr = -1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("train.optimizer.lr"), "{err}");
    let err = resolve(&single(EXAMPLE).replace("\"lenet\"", "\"vgg\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.backbone") && err.contains("resnet32"),
        "{err}"
    );
}

#[test]
fn an_unknown_method_lists_the_presets() {
    let err = resolve(&single(EXAMPLE).replace("ldam-drw", "ldam"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("method") && err.contains("balanced-softmax"),
        "{err}"
    );
}

#[test]
fn bad_plugin_parameters_are_rejected_with_the_section() {
    let text = single(EXAMPLE).replace(
        "[model]",
        "[augment]\nbatch = { name = \"mixup\", alpha = -1 }\n[model]",
    );
    let err = resolve(&text).unwrap_err().to_string();
    assert!(
        err.contains("augment.batch") && err.contains("mixup.alpha"),
        "{err}"
    );
}

#[test]
fn oversized_specs_and_grids_are_refused() {
    let big = "#".repeat(MAX_SPEC_BYTES + 1);
    assert!(matches!(
        ExperimentSpec::parse("big.toml", &big),
        Err(SpecError::TooLarge { .. })
    ));
    let grid = format!(
        "{}\n[sweep]\n\"train.seed\" = [{}]\n\"data.split_seed\" = [{}]\n",
        single(EXAMPLE),
        (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let spec = ExperimentSpec::parse("grid.toml", &grid).unwrap();
    assert!(
        expand_sweep("grid.toml", &spec)
            .unwrap_err()
            .to_string()
            .contains("limit")
    );
}

#[test]
fn the_resolved_run_round_trips_through_json() {
    let run = resolve(&single(EXAMPLE)).unwrap();
    let json = run.to_json();
    assert!(json.contains("\"method\":\"ldam-drw\""));
    // Every preset, read back as a worker reads it, is the same run (same canonical JSON).
    let book = PresetBook::builtin();
    for name in book.names() {
        // On a CIFAR ResNet, which every preset can train (the expert presets split one).
        let text = single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{name}\""))
            .replace("backbone = \"lenet\"", "backbone = \"resnet8\"");
        let run = resolve(&text).unwrap();
        let back = ResolvedRun::from_json("config", &run.to_json()).unwrap();
        assert_eq!(back, run, "{name}");
        assert_eq!(back.to_json(), run.to_json(), "{name}");
    }
    let err = ResolvedRun::from_json("r-7 config", "{\"name\": 1}").unwrap_err();
    assert!(err.to_string().contains("r-7 config"), "{err}");
}

/// Regression (fuzzing): a resolved run must read back from the JSON the daemon stores with the
/// same config hash, or its worker refuses it. `eps = inf` and a NaN synthetic noise passed
/// validation and were stored as JSON `null`.
#[test]
fn non_finite_values_are_refused_so_the_stored_json_reads_back() {
    let spec = |extra_train: &str, data: &str| {
        format!("name = \"f\"\n[data]\n{data}\n[train]\nepochs = 1\n{extra_train}\n")
    };
    let digits = "format = \"digits\"";
    for (text, key) in [
        (
            spec("optimizer = { name = \"adam\", eps = inf }", digits),
            "train.optimizer.eps",
        ),
        (
            spec("optimizer = { name = \"adam\", eps = 0.0 }", digits),
            "train.optimizer.eps",
        ),
        (
            spec(
                "",
                "format = \"synthetic\"\nsynthetic = { num_classes = 2, per_class_train = 2, per_class_test = 1, noise = nan }",
            ),
            "data.synthetic.noise",
        ),
    ] {
        match resolve(&text) {
            Err(SpecError::Invalid {
                key: k, message, ..
            }) => {
                assert_eq!(k, key, "{message}");
                assert!(message.contains("out of range"), "{message}");
            }
            other => panic!("{text}: expected an error on {key}, got {other:?}"),
        }
    }
    let ok = resolve(&spec("optimizer = { name = \"adam\", eps = 1e-8 }", digits)).unwrap();
    let back = ResolvedRun::from_json("back", &ok.to_json()).unwrap();
    assert_eq!(
        crate::train::config_hash(&back),
        crate::train::config_hash(&ok)
    );
}

#[test]
fn gpu_mem_mb_is_validated_and_leaves_the_config_hash_alone() {
    let with = |resources: &str| single(EXAMPLE).replace("gpus = 0", resources);
    let run = resolve(&with("gpu_share = 0.25\ngpu_mem_mb = 6000")).expect("valid");
    assert_eq!(run.resources.gpu_mem_mb, Some(6000));
    let plain = resolve(&with("gpu_share = 0.25")).expect("valid");
    assert_eq!(plain.resources.gpu_mem_mb, None);
    assert_eq!(
        crate::train::config_hash(&run),
        crate::train::config_hash(&plain),
        "a reservation does not change what is trained"
    );
    assert!(
        !plain.to_json().contains("gpu_mem_mb"),
        "absent stays absent"
    );
    let back = ResolvedRun::from_json("r", &run.to_json()).expect("round trip");
    assert_eq!(back.resources.gpu_mem_mb, Some(6000));
    for (resources, want) in [
        (
            "gpu_share = 0.5\ngpu_mem_mb = 0",
            "0 is out of range; allowed 1 ..= 1048576",
        ),
        ("gpus = 1\ngpu_mem_mb = 2000000", "2000000 is out of range"),
        ("gpus = 0\ngpu_mem_mb = 4000", "applies to GPU runs only"),
        ("gpu_share = 0.5\ngpu_mem_mb = -5", "gpu_mem_mb"),
    ] {
        let err = resolve(&with(resources)).unwrap_err().to_string();
        assert!(
            err.contains("resources.gpu_mem_mb") || err.contains("gpu_mem_mb"),
            "{err}"
        );
        assert!(err.contains(want), "{resources}: {err}");
    }
}

#[test]
fn pretrained_weights_are_pinned_by_content_and_enter_the_config_hash() {
    use crate::train::config_hash;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    std::fs::write(&a, b"weights A").unwrap();
    std::fs::write(&b, b"weights B").unwrap();
    let base = single(EXAMPLE).replace("backbone = \"lenet\"", "backbone = \"resnet50\"");
    let plain = resolve(&base).unwrap();
    assert!(
        !plain.to_json().contains("pretrained"),
        "absent is not written"
    );

    let with = |path: &std::path::Path| {
        let text = base.replace(
            "head = \"linear\"",
            &format!(
                "head = \"linear\"\npretrained = {:?}",
                path.display().to_string()
            ),
        );
        let mut run = resolve(&text).unwrap();
        run.model.pin_pretrained().unwrap();
        run
    };
    let (ra, rb) = (with(&a), with(&b));
    assert_eq!(
        ra.model.pretrained_sha256.as_ref().map(String::len),
        Some(64)
    );
    assert_ne!(config_hash(&ra), config_hash(&rb));
    assert_ne!(config_hash(&ra), config_hash(&plain));
    // Same path, other content: another identity.
    std::fs::write(&a, b"weights A, retrained").unwrap();
    assert_ne!(config_hash(&with(&a)), config_hash(&ra));
    // A pinned run whose file changed is refused, naming the file.
    let mut stale = ra.clone();
    let err = stale.model.pin_pretrained().unwrap_err().to_string();
    assert!(
        err.contains("a.safetensors") && err.contains("changed"),
        "{err}"
    );
}

#[test]
fn pretrained_keys_are_checked() {
    let base = single(EXAMPLE);
    let err = resolve(&base.replace(
        "head = \"linear\"",
        &format!(
            "head = \"linear\"\npretrained_sha256 = \"{}\"",
            "a".repeat(64)
        ),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model.pretrained_sha256") && err.contains("set model.pretrained"),
        "{err}"
    );
    let err = resolve(&base.replace(
        "head = \"linear\"",
        "head = \"linear\"\npretrained = \"/w.safetensors\"\npretrained_sha256 = \"ABC\"",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("64 lowercase hex digits"), "{err}");
    let err = resolve(&base.replace("head = \"linear\"", "head = \"linear\"\npretrained = \"\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.pretrained"), "{err}");
}

#[test]
fn list_formats_need_their_split_files_and_refuse_re_sampling() {
    let base = "name = \"i\"\n[model]\nbackbone = \"resnet10\"\n[data]\nformat = \"list\"\npath = \"/data/imagenet\"\n";
    let ok = format!(
        "{base}train_list = \"ImageNet_LT_train.txt\"\ntest_list = \"ImageNet_LT_test.txt\"\nimage_size = 112\n"
    );
    let run = resolve(&ok).unwrap();
    assert_eq!(run.data.image_size, Some(112));
    assert_eq!(run.color_jitter, None);
    let jittered = resolve(&format!("{ok}[augment]\ncolor_jitter = 0.4\n")).unwrap();
    assert_eq!(jittered.color_jitter, Some(0.4));
    assert_ne!(
        crate::train::config_hash(&jittered),
        crate::train::config_hash(&run),
        "the jitter is part of the run's identity"
    );
    assert_eq!(
        run.data.list_files(),
        [
            (
                "data.train_list",
                "/data/imagenet/ImageNet_LT_train.txt".into()
            ),
            (
                "data.test_list",
                "/data/imagenet/ImageNet_LT_test.txt".into()
            )
        ]
    );
    let cases = [
        (
            format!("{base}test_list = \"t.txt\"\n"),
            "data.train_list",
            "required",
        ),
        (
            format!("{ok}imbalance = {{ profile = \"exp\", ratio = 10 }}\n"),
            "data.imbalance",
            "already long-tailed",
        ),
        (
            format!("{ok}val_per_class = 5\n"),
            "data.val_per_class",
            "val_list",
        ),
        (
            ok.replace("image_size = 112", "image_size = 4"),
            "data.image_size",
            "out of range",
        ),
        (
            ok.replace("format = \"list\"", "format = \"idx\""),
            "data.train_list",
            "list\" or \"inat\" only",
        ),
        (
            format!("{ok}[augment]\npad = 16\n"),
            "augment.pad",
            "RandomResizedCrop",
        ),
        (
            format!("{ok}[augment]\ncolor_jitter = 1.5\n"),
            "augment.color_jitter",
            "out of range",
        ),
        (
            "name = \"d\"\n[data]\nformat = \"digits\"\n[augment]\ncolor_jitter = 0.4\n".into(),
            "augment.color_jitter",
            "split-file data sets",
        ),
    ];
    for (text, key, says) in cases {
        let err = resolve(&text).unwrap_err();
        let SpecError::Invalid {
            key: k, message, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(k, key, "{err}");
        assert!(message.contains(says), "{key}: {message}");
    }
}

#[test]
fn the_split_lists_content_is_pinned_into_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.txt"), "a.jpg 0\nb.jpg 1\n").unwrap();
    std::fs::write(dir.path().join("test.txt"), "c.jpg 1\n").unwrap();
    let text = format!(
        "name = \"i\"\n[model]\nbackbone = \"resnet10\"\n[data]\nformat = \"list\"\npath = \"{}\"\ntrain_list = \"train.txt\"\ntest_list = \"test.txt\"\n",
        dir.path().display()
    );
    let mut run = resolve(&text).unwrap();
    run.data.pin_split_file().unwrap();
    let pinned = run.data.lists_sha256.clone().unwrap();
    assert_eq!(pinned.len(), 64);
    let before = crate::train::config_hash(&run);
    std::fs::write(dir.path().join("test.txt"), "c.jpg 0\n").unwrap();
    let now = run.data.lists_digest().unwrap().unwrap();
    assert_ne!(now, pinned);
    let err = run.data.check_lists_pin(&now).unwrap_err().to_string();
    assert!(
        err.contains("data.lists_sha256") && err.contains("changed"),
        "{err}"
    );
    let mut again = resolve(&text).unwrap();
    again.data.pin_split_file().unwrap();
    assert_ne!(
        crate::train::config_hash(&again),
        before,
        "other lists, another run"
    );
}

#[test]
fn a_run_names_the_crates_outside_cauda_whose_plugins_it_uses() {
    fn ce(
        _: &crate::registry::Params,
        _: &crate::registry::BuildContext,
    ) -> std::result::Result<std::sync::Arc<dyn crate::losses::Loss>, crate::registry::RegistryError>
    {
        let loss = crate::losses::CrossEntropy::new()
            .map_err(|e| crate::registry::RegistryError::build("mine", e))?;
        Ok(std::sync::Arc::new(loss))
    }
    let mut registry = builtin_registry();
    registry
        .register_extension(
            "my-plugins 0.2.0",
            crate::registry::PluginDecl::new("mine", "a test loss", "none", vec![]),
            crate::registry::Factory::Loss(ce),
        )
        .unwrap();
    let text = "name = \"x\"\n[data]\nformat = \"digits\"\n";
    let spec = ExperimentSpec::parse("spec.toml", text).unwrap();
    let own = spec
        .resolve("spec.toml", &PresetBook::builtin(), &registry)
        .unwrap();
    assert!(own.extensions.is_empty());
    assert!(
        !own.to_json().contains("extensions"),
        "not written: hashes stay"
    );
    let text = format!("{text}[rebalance]\nloss = \"mine\"\n");
    let spec = ExperimentSpec::parse("spec.toml", &text).unwrap();
    let theirs = spec
        .resolve("spec.toml", &PresetBook::builtin(), &registry)
        .unwrap();
    assert_eq!(theirs.extensions, ["my-plugins 0.2.0"]);
    assert_ne!(
        crate::train::config_hash(&theirs),
        crate::train::config_hash(&ResolvedRun {
            extensions: vec!["my-plugins 0.3.0".into()],
            ..theirs.clone()
        }),
        "another version of the crate is another identity"
    );
}

#[test]
fn gcl_classifier_stage_needs_the_cosine_classifier_it_trains() {
    let on = |method: &str, extra: &str| {
        single(EXAMPLE)
            .replace("method = \"ldam-drw\"", &format!("method = \"{method}\""))
            .replace("[train]", &format!("{extra}[train]"))
    };
    let run = resolve(&on("gcl", "")).unwrap();
    assert_eq!(run.model.head, "cosine");
    assert_eq!(
        run.stage2.as_ref().map(|s| s.name.as_str()),
        Some("gcl-classifier")
    );
    // GCL's classifier stage after a linear stage 1: refused at the stage-2 key, naming the fix.
    let linear = on("ce", "[module]\nstage2 = { name = \"gcl-classifier\" }\n");
    let err = resolve(&linear).unwrap_err().to_string();
    assert!(
        err.contains("module.stage2") && err.contains("name = \"cosine\", scale = 1.0"),
        "{err}"
    );
    // kNN and DisAlign keep any head.
    for stage2 in ["knn", "disalign"] {
        let text = on(
            "ce",
            &format!("[module]\nstage2 = {{ name = \"{stage2}\" }}\n"),
        );
        assert!(resolve(&text).is_ok(), "{stage2}");
    }
}
