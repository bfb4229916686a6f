//! Save → load round trips and the errors for files that do not match.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use osips_models::vars::{load_tensors, save_tensors};
use osips_models::{ModelError, NetworkKind, Preset};

use crate::testutil::networks;

fn values(nets: &osips_models::Networks, kind: NetworkKind) -> BTreeMap<String, Vec<u32>> {
    nets.params(kind)
        .named_vars()
        .into_iter()
        .map(|(name, var)| {
            let v: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            (name, v.into_iter().map(f32::to_bits).collect())
        })
        .collect()
}

#[test]
fn save_then_load_into_fresh_networks_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let trained = networks(Preset::Tiny, 1);
    // Move the running statistics away from their initial values too.
    let x = crate::testutil::images(4, 64, 3);
    trained.identity.forward_t(&x, true).unwrap();
    trained.save(dir.path()).unwrap();
    let fresh = networks(Preset::Tiny, 2);
    for kind in NetworkKind::ALL {
        assert_ne!(values(&trained, kind), values(&fresh, kind));
    }
    fresh.load(dir.path()).unwrap();
    for kind in NetworkKind::ALL {
        assert_eq!(values(&trained, kind), values(&fresh, kind), "{kind:?}");
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

fn tamper(edit: impl FnOnce(&mut BTreeMap<String, Tensor>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let nets = networks(Preset::Tiny, 1);
    let path = dir.path().join("generator.safetensors");
    nets.generator_params.save(&path).unwrap();
    let mut tensors = load_tensors(&path).unwrap();
    edit(&mut tensors);
    let list: Vec<(String, Tensor)> = tensors.into_iter().collect();
    save_tensors(&list, &path).unwrap();
    let before = values(&nets, NetworkKind::Generator);
    let err = nets
        .generator_params
        .load(&path)
        .expect_err("tampered file must not load");
    assert!(matches!(err, ModelError::Checkpoint { .. }), "{err:?}");
    assert_eq!(
        before,
        values(&nets, NetworkKind::Generator),
        "a failed load modified the network"
    );
    err.to_string()
}

#[test]
fn missing_tensor_is_a_clear_error() {
    let msg = tamper(|t| {
        t.remove("to_rgb.weight");
    });
    assert!(msg.contains("missing tensor `to_rgb.weight`"), "{msg}");
}

#[test]
fn extra_tensor_is_a_clear_error() {
    let msg = tamper(|t| {
        t.insert(
            "stages.9.conv.weight".into(),
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(
        msg.contains("unexpected tensor `stages.9.conv.weight`"),
        "{msg}"
    );
}

#[test]
fn wrong_shape_is_a_clear_error() {
    let msg = tamper(|t| {
        t.insert(
            "to_rgb.bias".into(),
            Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(
        msg.contains("`to_rgb.bias` has shape [4], expected [3]"),
        "{msg}"
    );
}

#[test]
fn wrong_dtype_is_a_clear_error() {
    let msg = tamper(|t| {
        let bias = t["to_rgb.bias"].to_dtype(candle_core::DType::F64).unwrap();
        t.insert("to_rgb.bias".into(), bias);
    });
    assert!(msg.contains("dtype"), "{msg}");
}

#[test]
fn garbage_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nets = networks(Preset::Tiny, 1);
    let path = dir.path().join("identity.safetensors");
    std::fs::write(
        &path,
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a safetensors file",
    )
    .unwrap();
    let msg = nets.identity_params.load(&path).unwrap_err().to_string();
    assert!(msg.contains("not a valid safetensors file"), "{msg}");
    let msg = nets
        .identity_params
        .load(&dir.path().join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("absent.safetensors"), "{msg}");
}

#[test]
fn checkpoint_meta_checks_version_and_preset() {
    let dir = tempfile::tempdir().unwrap();
    let config = osips_models::ModelConfig::tiny(10);
    let write = |version: u32, preset: &str| {
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::json!({ "model": config, "other": 1 }).to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("state.json"),
            format!(
                r#"{{"format_version": {version}, "preset": "{preset}", "step": 5, "seed": 1}}"#
            ),
        )
        .unwrap();
    };
    write(osips_models::FORMAT_VERSION, "tiny");
    let (model, meta) = osips_models::checkpoint::read_checkpoint_meta(dir.path()).unwrap();
    assert_eq!(model, config);
    assert_eq!(meta.step, 5);
    write(99, "tiny");
    let msg = osips_models::checkpoint::read_checkpoint_meta(dir.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("format version 99"), "{msg}");
    write(osips_models::FORMAT_VERSION, "paper");
    let msg = osips_models::checkpoint::read_checkpoint_meta(dir.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("preset"), "{msg}");
}
