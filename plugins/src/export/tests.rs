//! Names, shapes and layouts of exported tensors for every backbone and head kind, and the
//! checks an export makes of its checkpoint.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::*;
use crate::models::{BackboneKind, Classifier, HeadKind, InputShape};
use crate::registry::builtin_registry;
use crate::spec::{ExperimentSpec, PresetBook};
use crate::train::CheckpointHeader;

const DIGITS: InputShape = InputShape {
    channels: 1,
    height: 8,
    width: 8,
};

fn model(kind: BackboneKind, head: HeadKind) -> Classifier {
    Classifier::new(kind, head, DIGITS, 10, &Device::default()).unwrap()
}

fn names_and_shapes(m: &Classifier) -> BTreeMap<String, Vec<usize>> {
    pytorch_tensors(m)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn mlp_names_and_shapes_are_pytorchs() {
    let got = names_and_shapes(&model(BackboneKind::Mlp, HeadKind::Linear));
    let want: BTreeMap<String, Vec<usize>> = [
        ("backbone.fc1.weight", vec![256, 64]),
        ("backbone.fc1.bias", vec![256]),
        ("backbone.fc2.weight", vec![128, 256]),
        ("backbone.fc2.bias", vec![128]),
        ("head.weight", vec![10, 128]),
        ("head.bias", vec![10]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn lenet_names_and_shapes_are_pytorchs() {
    let got = names_and_shapes(&model(BackboneKind::LeNet, HeadKind::Linear));
    let want: BTreeMap<String, Vec<usize>> = [
        ("backbone.conv1.weight", vec![6, 1, 5, 5]),
        ("backbone.conv1.bias", vec![6]),
        ("backbone.conv2.weight", vec![16, 6, 5, 5]),
        ("backbone.conv2.bias", vec![16]),
        ("backbone.fc1.weight", vec![120, 64]),
        ("backbone.fc1.bias", vec![120]),
        ("backbone.fc2.weight", vec![84, 120]),
        ("backbone.fc2.bias", vec![84]),
        ("head.weight", vec![10, 84]),
        ("head.bias", vec![10]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(got, want);
}

fn resnet(name: &str) -> BackboneKind {
    BackboneKind::parse(name).unwrap()
}

#[test]
fn resnet_names_follow_reference_py_with_sequential_shortcuts() {
    for (name, blocks) in [("resnet8b", 3), ("resnet20b", 9)] {
        let got = names_and_shapes(&model(resnet(name), HeadKind::Cosine { scale: 16.0 }));
        // stem conv + stem BN (5), 12 per block, 6 more per shortcut (2), cosine head (1).
        assert_eq!(got.len(), 6 + 12 * blocks + 6 * 2 + 1, "{got:?}");
        assert_eq!(got["backbone.stem.weight"], vec![16, 1, 3, 3]);
        for bn in ["running_mean", "running_var", "weight", "bias"] {
            assert_eq!(got[&format!("backbone.stem_bn.{bn}")], vec![16]);
        }
        assert_eq!(
            got["backbone.stem_bn.num_batches_tracked"],
            Vec::<usize>::new()
        );
        let first_of_stage2 = blocks / 3;
        let s = format!("backbone.blocks.{first_of_stage2}.shortcut");
        assert_eq!(got[&format!("{s}.0.weight")], vec![32, 16, 1, 1]);
        assert_eq!(got[&format!("{s}.1.running_var")], vec![32]);
        assert_eq!(
            got[&format!("backbone.blocks.{}.conv2.weight", blocks - 1)],
            vec![64, 64, 3, 3]
        );
        assert!(!got.contains_key("backbone.blocks.0.shortcut.0.weight"));
        assert_eq!(got["head.weight"], vec![10, 64]);
        assert!(!got.contains_key("head.bias"), "a cosine head has no bias");
        assert!(
            !got.keys()
                .any(|k| k.contains("gamma") || k.contains("training"))
        );
    }
}

#[test]
fn option_a_resnets_export_no_shortcut_tensors() {
    for (name, blocks) in [("resnet8", 3), ("resnet32", 15)] {
        let got = names_and_shapes(&model(resnet(name), HeadKind::Linear));
        // stem conv + stem BN (6), 12 per block, linear head (2); the shortcut is a function.
        assert_eq!(got.len(), 6 + 12 * blocks + 2, "{got:?}");
        assert!(
            !got.keys()
                .any(|k| k.contains("shortcut") || k.contains("pad"))
        );
        assert_eq!(got["backbone.blocks.0.conv1.weight"], vec![16, 16, 3, 3]);
        assert_eq!(
            got[&format!("backbone.blocks.{}.conv1.weight", blocks / 3)],
            vec![32, 16, 3, 3]
        );
        assert_eq!(got["head.weight"], vec![10, 64]);
        assert_eq!(got["head.bias"], vec![10]);
    }
}

#[test]
fn imagenet_resnets_export_under_torchvisions_names() {
    let rgb = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    // torchvision's state_dict() has 320 keys for both bottleneck nets (fc.weight and fc.bias
    // included, as head.weight and head.bias here), 122 for resnet18; resnet10 has 74.
    for (name, keys) in [
        ("resnet10", 74),
        ("resnet18", 122),
        ("resnet50", 320),
        ("resnext50_32x4d", 320),
    ] {
        let m = Classifier::new(resnet(name), HeadKind::Linear, rgb, 10, &Device::default());
        let got = names_and_shapes(&m.unwrap());
        assert_eq!(got.len(), keys, "{name}: {:?}", got.keys());
        assert_eq!(got["backbone.conv1.weight"], vec![64, 3, 7, 7]);
        assert_eq!(got["backbone.bn1.num_batches_tracked"], Vec::<usize>::new());
        let (wide, last) = if name.starts_with("resnet1") {
            (512, "backbone.layer4.0.conv2.weight")
        } else {
            (2048, "backbone.layer4.2.conv3.weight")
        };
        assert_eq!(got["head.weight"], vec![10, wide]);
        assert_eq!(got[last][0], wide);
        assert_eq!(got["backbone.layer2.0.downsample.0.weight"][2..], [1, 1]);
        assert_eq!(
            got["backbone.layer3.0.downsample.1.running_mean"],
            vec![if wide == 512 { 256 } else { 1024 }]
        );
        assert!(
            !got.keys()
                .any(|k| k.contains("gamma") || k.contains("maxpool") || k.contains("features"))
        );
    }
    let m = Classifier::new(
        resnet("resnext50_32x4d"),
        HeadKind::Linear,
        rgb,
        10,
        &Device::default(),
    );
    let got = names_and_shapes(&m.unwrap());
    assert_eq!(got["backbone.layer1.0.conv2.weight"], vec![128, 4, 3, 3]);
    assert_eq!(
        got["backbone.layer1.0.downsample.0.weight"],
        vec![256, 64, 1, 1]
    );
}

#[test]
fn lws_scales_are_exported_as_head_scales() {
    let mut m = model(BackboneKind::Mlp, HeadKind::Linear);
    m.head = m.head.with_lws_scales(&Device::default());
    assert_eq!(names_and_shapes(&m)["head.scales"], vec![10]);
}

#[test]
fn disalign_calibration_is_exported_under_the_names_rebuild_looks_for() {
    let mut m = model(BackboneKind::Mlp, HeadKind::Linear);
    m.head = m.head.with_disalign(&Device::default()).unwrap();
    let got = names_and_shapes(&m);
    // `rebuild` recognizes a DisAlign checkpoint by `head.logit_scale`.
    assert_eq!(got["head.logit_scale"], vec![10]);
    assert_eq!(got["head.logit_bias"], vec![10]);
    assert_eq!(got["head.confidence_bias"], vec![1]);
    assert_eq!(got["head.confidence_weight"][0], 1);
}

/// `W x + b` with `W` `[out, in]` row-major, as `nn.Linear` computes it.
fn pt_linear(w: &PtTensor, b: Option<&PtTensor>, x: &[f32]) -> Vec<f32> {
    let w = floats(w);
    let (out, inp) = (w.len() / x.len(), x.len());
    (0..out)
        .map(|o| {
            let dot: f32 = (0..inp).map(|i| w[o * inp + i] * x[i]).sum();
            dot + b.map_or(0.0, |b| floats(b)[o])
        })
        .collect()
}

fn floats(t: &PtTensor) -> Vec<f32> {
    t.bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn linear_weights_are_transposed_so_pytorch_semantics_give_burns_logits() {
    // An MLP evaluated in plain Rust from the exported tensors with PyTorch's `W x + b`
    // matches Burn's forward only if every Linear weight was transposed (fc1 is 256x64, so an
    // untransposed weight would not even have the right shape) and the head's was not.
    let m = model(BackboneKind::Mlp, HeadKind::Linear);
    let t = pytorch_tensors(&m).unwrap();
    let get = |n: &str| t.iter().find(|t| t.name == n).unwrap();
    assert_eq!(get("backbone.fc1.weight").shape, vec![256, 64]);
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let relu = |v: Vec<f32>| v.into_iter().map(|a| a.max(0.0)).collect::<Vec<_>>();
    let h = relu(pt_linear(
        get("backbone.fc1.weight"),
        Some(get("backbone.fc1.bias")),
        &x,
    ));
    let h = relu(pt_linear(
        get("backbone.fc2.weight"),
        Some(get("backbone.fc2.bias")),
        &h,
    ));
    let z = pt_linear(get("head.weight"), Some(get("head.bias")), &h);
    let case = check_case(&m, x, [1, 1, 8, 8]).unwrap();
    assert_eq!(case.classes, 10);
    for (a, b) in z.iter().zip(&case.logits) {
        assert!((a - b).abs() < 1e-4, "{z:?} vs {:?}", case.logits);
    }
}

#[test]
fn transpose_swaps_rows_and_columns() {
    let m = model(BackboneKind::Mlp, HeadKind::Linear);
    let t = pytorch_tensors(&m).unwrap();
    let w = t.iter().find(|t| t.name == "backbone.fc2.weight").unwrap();
    assert_eq!(w.shape, vec![128, 256]);
    assert_eq!(
        values(m.head.weight.val()),
        floats(t.iter().find(|t| t.name == "head.weight").unwrap())
    );
}

fn run(backbone: &str, head: &str) -> crate::spec::ResolvedRun {
    let text = format!(
        "name = \"x\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"{backbone}\"\nhead = \"{head}\"\n[train]\nepochs = 1\nbatch_size = 8\noptimizer = {{ name = \"sgd\", lr = 0.1 }}\n"
    );
    let spec = ExperimentSpec::parse("t.toml", &text).unwrap();
    spec.resolve("t.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap()
}

fn checkpoint_of(m: &Classifier, hash: String) -> Vec<u8> {
    Checkpoint {
        header: CheckpointHeader {
            config_hash: hash,
            stage: 1,
            epochs_done: 1,
            history: vec![],
        },
        model: m.valid().into_record().into_bytes().unwrap().to_vec(),
        optimizer: vec![],
        teacher: None,
    }
    .to_bytes()
}

#[test]
fn export_rebuilds_the_recipe_and_writes_loadable_safetensors() {
    for (backbone, kind) in [
        ("lenet", BackboneKind::LeNet),
        ("resnet8", resnet("resnet8")),
        ("resnet8b", resnet("resnet8b")),
        ("resnet10", resnet("resnet10")),
    ] {
        let r = run(backbone, "linear");
        let m = model(kind, HeadKind::Linear);
        let ck = checkpoint_of(&m, config_hash(&r));
        let bytes = export(
            &r,
            &ck,
            ExportFormat::Safetensors,
            &ExportOptions::default(),
        )
        .unwrap();
        let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let want = names_and_shapes(&m);
        assert_eq!(st.len(), want.len());
        for (name, shape) in &want {
            assert_eq!(st.tensor(name).unwrap().shape(), shape.as_slice(), "{name}");
        }
        let (_, meta) = ::safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["cauda.backbone"], backbone);
        let burn = export(&r, &ck, ExportFormat::Burn, &ExportOptions::default()).unwrap();
        assert_eq!(burn, Checkpoint::from_bytes(&ck).unwrap().model);
    }
}

#[test]
fn a_run_stored_before_the_resnet_rename_exports_its_option_b_net() {
    // Runs resolved before resnet8/20/32 became option A have no backbone_rule.
    let mut r = run("resnet8", "linear");
    assert_eq!(r.backbone_rule, Some(BackboneKind::BACKBONE_RULE));
    r.backbone_rule = None;
    let m = model(resnet("resnet8b"), HeadKind::Linear);
    let ck = checkpoint_of(&m, config_hash(&r));
    let bytes = export(
        &r,
        &ck,
        ExportFormat::Safetensors,
        &ExportOptions::default(),
    )
    .unwrap();
    let (_, meta) = ::safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata().clone().unwrap()["cauda.backbone"],
        "resnet8b"
    );
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensor("backbone.blocks.1.shortcut.0.weight").is_ok());
}

#[test]
fn a_checkpoint_that_does_not_fit_the_recipe_is_refused() {
    let r = run("lenet", "cosine");
    let m = model(BackboneKind::LeNet, HeadKind::Linear);
    let err = export(
        &r,
        &checkpoint_of(&m, config_hash(&r)),
        ExportFormat::Safetensors,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Record(_)), "{err}");
    let err = export(
        &r,
        &checkpoint_of(&m, "other".into()),
        ExportFormat::Burn,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ExportError::ForeignCheckpoint { .. }),
        "{err}"
    );
    let err = export(&r, b"junk", ExportFormat::Burn, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, ExportError::Checkpoint(_)), "{err}");
}

#[test]
fn tau_normalization_drops_the_bias_and_is_recorded() {
    let r = run("mlp", "linear");
    let m = model(BackboneKind::Mlp, HeadKind::Linear);
    let ck = checkpoint_of(&m, config_hash(&r));
    let opts = ExportOptions { tau: Some(1.0) };
    let bytes = export(&r, &ck, ExportFormat::Safetensors, &opts).unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensor("head.bias").is_err());
    let w = st.tensor("head.weight").unwrap();
    let row: Vec<f32> = w.data()[..128 * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "row norm {norm}");
}

/// A BCL run's checkpoint holds the contrastive heads too: the export rebuilds them from the
/// run's design and writes them under PyTorch's names (`contrast.projection.fc1.weight`
/// transposed to `[out, in]`, the BatchNorm's statistics and `num_batches_tracked`).
#[test]
fn a_contrastive_run_exports_its_heads_under_pytorchs_names() {
    let text = "name = \"x\"\nmethod = \"bcl\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"lenet\"\n[train]\nepochs = 1\nbatch_size = 8\noptimizer = { name = \"sgd\", lr = 0.1 }\n";
    let spec = ExperimentSpec::parse("t.toml", text).unwrap();
    let r = spec
        .resolve("t.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap();
    let m = model(BackboneKind::LeNet, HeadKind::Cosine { scale: 30.0 })
        .with_contrast(r.model.contrast, &Device::default())
        .unwrap();
    let ck = checkpoint_of(&m, config_hash(&r));
    let bytes = export(
        &r,
        &ck,
        ExportFormat::Safetensors,
        &ExportOptions::default(),
    )
    .unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let want = names_and_shapes(&m);
    assert_eq!(st.len(), want.len());
    for (name, shape) in [
        ("contrast.projection.fc1.weight", vec![84, 84]),
        ("contrast.projection.fc2.weight", vec![128, 84]),
        ("contrast.projection.fc2.bias", vec![128]),
        ("contrast.projection.bn.running_var", vec![84]),
        ("contrast.centers.fc2.weight", vec![128, 84]),
        ("contrast.centers.bn.num_batches_tracked", vec![]),
    ] {
        assert_eq!(want[name], shape, "{name}");
        assert_eq!(st.tensor(name).unwrap().shape(), shape.as_slice(), "{name}");
    }
}

/// A BBN run rebuilds its two-branch model from the recipe and exports BBN's layout: every block
/// but the last under `backbone.trunk`, the last once per branch under `backbone.branches.{0,1}`,
/// one classifier over both branches' 64 features.
#[test]
fn a_bilateral_run_exports_its_two_branches() {
    let text = "name = \"x\"\nmethod = \"bbn\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"resnet20\"\n[train]\nepochs = 1\nbatch_size = 8\noptimizer = { name = \"sgd\", lr = 0.1 }\n";
    let spec = ExperimentSpec::parse("t.toml", text).unwrap();
    let r = spec
        .resolve("t.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap();
    let kind = r.backbone_kind().unwrap();
    let m = model(kind, HeadKind::Linear);
    let ck = checkpoint_of(&m, config_hash(&r));
    let bytes = export(
        &r,
        &ck,
        ExportFormat::Safetensors,
        &ExportOptions::default(),
    )
    .unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let want = names_and_shapes(&m);
    assert_eq!(st.len(), want.len());
    for (name, shape) in [
        // ResNet-20: 3 blocks per stage, 8 shared; the third stage's last is per branch.
        ("backbone.trunk.7.conv2.weight", vec![64, 64, 3, 3]),
        ("backbone.branches.0.conv1.weight", vec![64, 64, 3, 3]),
        ("backbone.branches.1.bn2.running_var", vec![64]),
        ("head.weight", vec![10, 128]),
        ("head.bias", vec![10]),
    ] {
        assert_eq!(want[name], shape, "{name}");
        assert_eq!(st.tensor(name).unwrap().shape(), shape.as_slice(), "{name}");
    }
    assert!(!want.contains_key("backbone.trunk.8.conv1.weight"));
}
