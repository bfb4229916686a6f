//! The VGG16 import, with a file holding exactly timm's names and shapes.

use candle_core::{Device, Tensor};
use osips_models::vars::save_tensors;
use osips_models::vgg::{import_vgg16, vgg16_mapping};
use osips_models::{ModelError, Preset};

use crate::testutil::networks;

/// timm's `vgg16.tv_in1k` layout: the 26 conv tensors plus the classifier tensors we ignore.
fn timm_file(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut Vec<(String, Tensor)>),
) -> std::path::PathBuf {
    let mut tensors: Vec<(String, Tensor)> = vgg16_mapping()
        .into_iter()
        .enumerate()
        .map(|(i, (timm, _, shape))| {
            let t = (Tensor::ones(shape.as_slice(), candle_core::DType::F32, &Device::Cpu)
                .unwrap()
                * (i as f64 + 1.0))
                .unwrap();
            (timm, t)
        })
        .collect();
    tensors.push((
        "pre_logits.fc1.bias".into(),
        Tensor::zeros(4096, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    tensors.push((
        "head.fc.bias".into(),
        Tensor::zeros(1000, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    edit(&mut tensors);
    let path = dir.join("model.safetensors");
    save_tensors(&tensors, &path).unwrap();
    path
}

#[test]
fn mapping_covers_the_13_convolutions_of_vgg16() {
    let mapping = vgg16_mapping();
    assert_eq!(mapping.len(), 26);
    assert_eq!(mapping[0].0, "features.0.weight");
    assert_eq!(mapping[0].1, "trunk.stages.0.convs.0.conv.weight");
    assert_eq!(mapping[0].2, vec![64, 3, 3, 3]);
    assert_eq!(mapping[25].0, "features.28.bias");
    assert_eq!(mapping[25].1, "trunk.stages.4.convs.2.conv.bias");
    let params: usize = mapping
        .iter()
        .map(|(_, _, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(params, 14_714_688, "VGG16 features have 14.7 M parameters");
}

#[test]
fn imports_into_both_paper_trunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = timm_file(dir.path(), |_| {});
    let nets = networks(Preset::Paper, 0);
    for params in [&nets.identity_params, &nets.attribute_params] {
        assert_eq!(import_vgg16(&path, params).unwrap(), 26);
        let vars: std::collections::BTreeMap<_, _> = params.named_vars().into_iter().collect();
        for (i, (_, ours, _)) in vgg16_mapping().iter().enumerate() {
            let v: Vec<f32> = vars[ours]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(v.iter().all(|&x| x == i as f32 + 1.0), "{ours}");
        }
    }
}

#[test]
fn mismatches_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let nets = networks(Preset::Paper, 0);
    let path = timm_file(dir.path(), |t| {
        t.retain(|(n, _)| n != "features.14.weight");
    });
    let msg = import_vgg16(&path, &nets.identity_params)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing `features.14.weight`"), "{msg}");
    let path = timm_file(dir.path(), |t| {
        t[0].1 = Tensor::zeros((64, 3, 5, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    });
    let msg = import_vgg16(&path, &nets.identity_params)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`features.0.weight` has shape [64, 3, 5, 5]"),
        "{msg}"
    );
    let path = timm_file(dir.path(), |t| {
        t.push((
            "features.30.weight".into(),
            Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
        ));
    });
    let msg = import_vgg16(&path, &nets.identity_params)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unmapped tensor `features.30.weight`"),
        "{msg}"
    );
    // The tiny preset's trunk is not VGG16.
    let path = timm_file(dir.path(), |_| {});
    let tiny = networks(Preset::Tiny, 0);
    let err = import_vgg16(&path, &tiny.identity_params).unwrap_err();
    assert!(matches!(err, ModelError::Checkpoint { .. }));
    assert!(err.to_string().contains("paper preset"), "{err}");
}
