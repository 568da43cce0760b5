//! Every experiment spec under `examples/` (the study specs and `examples/benchmarks/`) parses,
//! expands and resolves with the built-in presets and registry, and the CIFAR-LT benchmark
//! specs hold the published recipe (Cao et al.'s `cifar_train.py`) and name the shipped split
//! files.

use std::path::{Path, PathBuf};

use cauda_plugins::data::Normalization;
use cauda_plugins::data::split_file::read_split_file;
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun, expand_sweep};
use cauda_plugins::train::learning_rate;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn specs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // The daemon's own config, parsed by daemon/src/config.rs's tests.
        .filter(|p| !p.ends_with("caudad.toml"))
        .collect();
    out.sort();
    out
}

fn resolve_all(path: &Path) -> Vec<ResolvedRun> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let spec = ExperimentSpec::parse(&origin, &text).unwrap_or_else(|e| panic!("{e}"));
    expand_sweep(&origin, &spec)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|p| {
            p.spec
                .resolve(&origin, &PresetBook::builtin(), &builtin_registry())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn every_example_spec_resolves() {
    let mut seen = 0;
    for dir in ["examples", "examples/benchmarks"] {
        for path in specs(&repo().join(dir)) {
            assert!(!resolve_all(&path).is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 6, "found {seen} example specs");
}

#[test]
fn cifar_lt_benchmarks_are_caos_recipe_on_the_shipped_splits() {
    let assets = repo().join("plugins/assets/splits");
    for (name, classes, r100_total) in [("cifar10", 10, 12_406), ("cifar100", 100, 10_847)] {
        let path = repo().join(format!("examples/benchmarks/{name}-lt.toml"));
        let runs = resolve_all(&path);
        // methods x 3 ratios x 3 seeds
        assert_eq!(runs.len() % 9, 0, "{name}: {} runs", runs.len());
        assert!(runs.len() >= 4 * 9, "{name}: {} runs", runs.len());
        let mut ratios = std::collections::BTreeSet::new();
        for run in &runs {
            let d = &run.data;
            assert_eq!(d.normalize, Normalization::Cifar10, "{}", run.name);
            assert_eq!(d.val_per_class, 0);
            assert!(d.imbalance.is_none() && d.max_per_class.is_none());
            assert_eq!(run.model.backbone, "resnet32");
            let t = &run.train;
            assert_eq!((t.epochs, t.batch_size), (200, 128));
            let o = &t.optimizer;
            assert_eq!((o.name.as_str(), o.lr, o.momentum), ("sgd", 0.1, 0.9));
            assert_eq!((o.weight_decay, o.nesterov), (2e-4, false));
            assert!(run.crop_flip && run.pad == 4);
            // Cao's adjust_learning_rate: lr * epoch / 5 for (1-based) epochs 1..=5, lr until
            // 160, lr * 0.01 for epochs 161..=180, lr * 0.0001 after.
            for (epoch, want) in [
                (0, 0.02),
                (4, 0.1),
                (5, 0.1),
                (159, 0.1),
                (160, 1e-3),
                (179, 1e-3),
                (180, 1e-5),
                (199, 1e-5),
            ] {
                let got = learning_rate(o.lr, &t.schedule, epoch, t.epochs);
                assert!(
                    (got - want).abs() < 1e-12,
                    "{}: epoch {epoch}: lr {got}, want {want}",
                    run.name
                );
            }
            // The spec names the deployed copy; the shipped file has the same name.
            let file = d.split_file.as_ref().unwrap().file_name().unwrap();
            assert!(file.to_string_lossy().starts_with(&format!("{name}-lt-r")));
            ratios.insert(file.to_string_lossy().into_owned());
        }
        assert_eq!(ratios.len(), 3, "{ratios:?}");
        for file in &ratios {
            let split = read_split_file(&assets.join(file)).unwrap();
            assert_eq!(split.selection.num_classes, classes);
            if file.ends_with("r100.json") {
                let total: usize = split.selection.ranks.unwrap().iter().map(Vec::len).sum();
                assert_eq!(total, r100_total, "{file}");
            }
        }
    }
}

#[test]
fn the_large_benchmarks_ship_their_papers_recipes() {
    use cauda_plugins::data::DataFormat;
    // (file, format, backbone, epochs, batch, lr, weight decay, pretrained)
    let recipes = [
        (
            "imagenet-lt",
            DataFormat::List,
            "resnext50_32x4d",
            90,
            256,
            0.1,
            5e-4,
            false,
        ),
        (
            "places-lt",
            DataFormat::List,
            "resnet50",
            30,
            256,
            0.01,
            5e-4,
            true,
        ),
        (
            "inat2018",
            DataFormat::Inat,
            "resnet50",
            90,
            512,
            0.2,
            1e-4,
            false,
        ),
    ];
    for (name, format, backbone, epochs, batch, lr, wd, pretrained) in recipes {
        let runs = resolve_all(&repo().join(format!("examples/benchmarks/{name}.toml")));
        let methods: Vec<&str> = runs.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["ce", "balanced-softmax"], "{name}");
        for run in &runs {
            let (d, t) = (&run.data, &run.train);
            assert_eq!(d.format, format, "{name}");
            assert!(d.train_list.is_some() && d.test_list.is_some());
            assert!(d.imbalance.is_none(), "{name}: the lists are the split");
            assert_eq!(d.image_size, Some(224));
            assert_eq!(run.model.backbone, backbone);
            assert_eq!(run.model.pretrained.is_some(), pretrained, "{name}");
            assert_eq!((t.epochs, t.batch_size), (epochs, batch));
            assert_eq!((t.optimizer.lr, t.optimizer.weight_decay), (lr, wd));
            assert_eq!(t.schedule.name, "cosine");
        }
    }
}
