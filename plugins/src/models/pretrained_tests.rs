//! Pretrained weights in: an export reads back tensor for tensor, names with or without the
//! `backbone.` prefix, the old classifier left out, and every misfit named.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Device;
use safetensors::tensor::TensorView;

use super::*;
use crate::export::{PtTensor, pytorch_tensors};
use crate::models::{BackboneKind, HeadKind, ImageNetArch, InputShape};

const RGB32: InputShape = InputShape {
    channels: 3,
    height: 32,
    width: 32,
};

fn model(kind: BackboneKind, input: InputShape) -> Classifier {
    Classifier::new(kind, HeadKind::Linear, input, 7, &Device::default()).unwrap()
}

fn resnet10() -> Classifier {
    model(BackboneKind::ImageNet(ImageNetArch::ResNet10), RGB32)
}

fn write(dir: &Path, file: &str, tensors: &[PtTensor]) -> PathBuf {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap();
            (t.name.as_str(), view)
        })
        .collect();
    let bytes = safetensors::tensor::serialize(views, None::<HashMap<String, String>>).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The classifier's tensors as PyTorch names them, the head's left out.
fn backbone_of(m: &Classifier) -> Vec<PtTensor> {
    pytorch_tensors(m)
        .unwrap()
        .into_iter()
        .filter(|t| t.name.starts_with("backbone."))
        .collect()
}

fn load(m: Classifier, path: &Path) -> Result<(Classifier, PretrainedReport), PretrainedError> {
    load_pretrained(m, "resnet10", path, None)
}

#[test]
fn an_export_reads_back_tensor_for_tensor_and_the_head_stays_new() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        BackboneKind::ImageNet(ImageNetArch::ResNet10),
        // fc1/fc2 are stored transposed: read back only if transposed again.
        BackboneKind::Mlp,
        BackboneKind::parse("resnet8b").unwrap(),
    ] {
        let source = model(kind, RGB32);
        let path = write(
            dir.path(),
            "w.safetensors",
            &pytorch_tensors(&source).unwrap(),
        );
        let target = model(kind, RGB32);
        let head_before = pytorch_tensors(&target).unwrap();
        let (loaded, report) = load_pretrained(target, kind.name(), &path, None).unwrap();
        assert_eq!(
            backbone_of(&loaded),
            backbone_of(&source),
            "{}",
            kind.name()
        );
        let head = |m: &[PtTensor]| -> Vec<PtTensor> {
            m.iter()
                .filter(|t| t.name.starts_with("head."))
                .cloned()
                .collect()
        };
        assert_eq!(head(&pytorch_tensors(&loaded).unwrap()), head(&head_before));
        assert!(
            report.ignored.contains(&"head.weight".to_string()),
            "{report:?}"
        );
        assert_eq!(report.sha256, read_pretrained(&path).unwrap().1);
    }
}

#[test]
fn torchvision_names_without_the_prefix_load_and_fc_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let source = resnet10();
    let mut tensors: Vec<PtTensor> = backbone_of(&source)
        .into_iter()
        .map(|mut t| {
            t.name = t.name.trim_start_matches("backbone.").to_string();
            t
        })
        .collect();
    let fc = PtTensor {
        name: "fc.weight".into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![1000, 512],
        bytes: vec![0; 1000 * 512 * 4],
    };
    tensors.push(fc);
    let path = write(dir.path(), "tv.safetensors", &tensors);
    let (loaded, report) = load(resnet10(), &path).unwrap();
    assert_eq!(backbone_of(&loaded), backbone_of(&source));
    // 12 convolutions and 12 BatchNorms of 4 tensors; their 12 `num_batches_tracked` are not loaded.
    assert_eq!(report.loaded, 12 + 12 * 4, "{report:?}");
    assert_eq!(report.ignored.len(), 1 + 12, "{report:?}");
    assert!(report.ignored.contains(&"fc.weight".to_string()));
    assert!(
        report
            .ignored
            .contains(&"bn1.num_batches_tracked".to_string())
    );
}

#[test]
fn half_precision_weights_are_widened() {
    let dir = tempfile::tempdir().unwrap();
    let source = model(BackboneKind::Mlp, RGB32);
    let tensors: Vec<PtTensor> = backbone_of(&source)
        .into_iter()
        .map(|mut t| {
            let halves: Vec<u8> = t
                .bytes
                .chunks_exact(4)
                .flat_map(|b| {
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    burn::tensor::f16::from_f32(v).to_le_bytes()
                })
                .collect();
            t.dtype = safetensors::Dtype::F16;
            t.bytes = halves;
            t
        })
        .collect();
    let path = write(dir.path(), "half.safetensors", &tensors);
    let (loaded, _) = load_pretrained(model(BackboneKind::Mlp, RGB32), "mlp", &path, None).unwrap();
    let want = backbone_of(&source);
    for (a, b) in backbone_of(&loaded).iter().zip(&want) {
        let (x, y) = (floats(a), floats(b));
        let err = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-3, "{}: {err}", a.name);
    }
}

fn floats(t: &PtTensor) -> Vec<f32> {
    t.bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn missing_unexpected_and_misshapen_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = backbone_of(&resnet10());
    tensors.retain(|t| t.name != "backbone.layer2.0.downsample.0.weight");
    tensors.push(PtTensor {
        name: "backbone.layer5.0.conv1.weight".into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![2],
        bytes: vec![0; 8],
    });
    let bn = tensors
        .iter_mut()
        .find(|t| t.name == "backbone.bn1.running_var")
        .unwrap();
    bn.shape = vec![32];
    bn.bytes.truncate(32 * 4);
    let path = write(dir.path(), "bad.safetensors", &tensors);
    let err = load(resnet10(), &path).unwrap_err();
    let text = err.to_string();
    let PretrainedError::Mismatch {
        missing,
        unexpected,
        shapes,
        ..
    } = err
    else {
        panic!("{text}");
    };
    assert_eq!(missing, vec!["layer2.0.downsample.0.weight".to_string()]);
    assert_eq!(unexpected, vec!["layer5.0.conv1.weight".to_string()]);
    assert_eq!(
        shapes,
        vec![("bn1.running_var".to_string(), vec![32], vec![64])]
    );
    for part in [
        "bad.safetensors",
        "`resnet10`",
        "missing: `layer2.0.downsample.0.weight`",
        "unexpected: `layer5.0.conv1.weight`",
        "`bn1.running_var` is [32] in the file, [64] here",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

#[test]
fn another_networks_weights_are_refused_with_a_bounded_message() {
    // resnet18 has a second block per stage that resnet10's file lacks: 40 missing keys.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r10.safetensors", &backbone_of(&resnet10()));
    let r18 = model(BackboneKind::ImageNet(ImageNetArch::ResNet18), RGB32);
    let err = load_pretrained(r18, "resnet18", &path, None).unwrap_err();
    let text = err.to_string();
    let PretrainedError::Mismatch { missing, .. } = &err else {
        panic!("{text}");
    };
    assert_eq!(missing.len(), 4 * 10, "{missing:?}");
    assert!(missing.contains(&"layer4.1.bn2.running_var".to_string()));
    assert!(text.contains("(and 28 more)"), "{text}");
}

#[test]
fn a_changed_file_a_pickle_and_a_duplicate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "w.safetensors", &backbone_of(&resnet10()));
    let err = load_pretrained(resnet10(), "resnet10", &path, Some(&"0".repeat(64))).unwrap_err();
    assert!(matches!(err, PretrainedError::Changed { .. }), "{err}");

    // A broken torch.save file: pytorch-reader's reason and the conversion one-liner.
    let pth = dir.path().join("resnet50-0676ba61.pth");
    std::fs::write(&pth, b"PK\x03\x04 a torch.save zip").unwrap();
    let err = load(resnet10(), &pth).unwrap_err();
    assert!(matches!(err, PretrainedError::Torch { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("resnet50-0676ba61.pth") && err.contains("safetensors.torch"),
        "{err}"
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not weights").unwrap();
    let err = load(resnet10(), &junk).unwrap_err();
    assert!(matches!(err, PretrainedError::Format { .. }), "{err}");

    let mut tensors = backbone_of(&resnet10());
    let mut plain = tensors[0].clone();
    plain.name = plain.name.trim_start_matches("backbone.").to_string();
    tensors.push(plain);
    let path = write(dir.path(), "dup.safetensors", &tensors);
    let err = load(resnet10(), &path).unwrap_err();
    assert!(matches!(err, PretrainedError::Duplicate { .. }), "{err}");

    let err = load(resnet10(), &dir.path().join("absent.safetensors")).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}
