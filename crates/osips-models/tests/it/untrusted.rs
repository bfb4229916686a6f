//! Checkpoints from somewhere else: truncated files, headers that claim absurd sizes,
//! configs that ask for absurd networks, garbage metadata. Each is one clear error, with
//! no panic and no allocation beyond what the files themselves hold.

use std::path::Path;
use std::time::{Duration, Instant};

use osips_models::checkpoint::{NetworkKind, GENERATOR_EMA_FILE};
use osips_models::{Synthesizer, FORMAT_VERSION};

use crate::synthesizer::write_checkpoint;

/// Load, and require an error that contains `needle`, within a second (an attempted huge
/// allocation or a scan of absurd sizes would take far longer, or abort the process).
fn load_err(dir: &Path, needle: &str) -> String {
    let t0 = Instant::now();
    let err = match Synthesizer::load(dir) {
        Ok(_) => panic!("loaded a bad checkpoint (expected an error with `{needle}`)"),
        Err(e) => e.to_string(),
    };
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    err
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config["model"]);
    std::fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn truncated_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), FORMAT_VERSION);
    let file = NetworkKind::Identity.file_name();
    let path = dir.path().join(&file);
    let full = std::fs::read(&path).unwrap();
    let header = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    for cut in [
        0,
        3,
        8,
        8 + header / 2,
        8 + header,
        full.len() / 2,
        full.len() - 1,
    ] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let err = load_err(dir.path(), &file);
        assert!(
            err.contains("not a valid safetensors file")
                || err.contains("does not match")
                || err.contains("fewer than the network"),
            "cut at {cut}: {err}"
        );
    }
    std::fs::write(&path, &full).unwrap();
    assert!(Synthesizer::load(dir.path()).is_ok());
}

#[test]
fn headers_claiming_absurd_sizes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), FORMAT_VERSION);
    let path = dir.path().join(GENERATOR_EMA_FILE);
    // Each forged file is padded to the real file's size, so that it is the header (not
    // the size) that is judged.
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    let pad = |mut bytes: Vec<u8>| {
        bytes.resize(size.max(bytes.len()), 0);
        bytes
    };

    // A header length of 2^62 bytes in a file of a few hundred.
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, pad(bytes)).unwrap();
    load_err(dir.path(), "not a valid safetensors file");

    // A well-formed header for a tensor of 2^40 × 2^40 f32 whose data is not there.
    let json = r#"{"to_rgb.weight":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,17592186044416]}}"#;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, pad(bytes)).unwrap();
    load_err(dir.path(), "not a valid safetensors file");

    // Offsets that overlap and run backwards.
    let json = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&path, pad(bytes)).unwrap();
    load_err(dir.path(), "not a valid safetensors file");
}

#[test]
fn configs_asking_for_absurd_networks_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();

    // 2^30 identities: the classifier alone would be 256 GiB of f32.
    write_checkpoint(dir.path(), FORMAT_VERSION);
    edit_config(dir.path(), |m| m["n_identities"] = (1u64 << 30).into());
    load_err(dir.path(), "fewer than the network");

    // Widths whose weight's element count overflows usize.
    write_checkpoint(dir.path(), FORMAT_VERSION);
    edit_config(dir.path(), |m| {
        m["identity_trunk"]["stages"][0]["channels"] = (1u64 << 40).into();
        m["identity_trunk"]["stages"][1]["channels"] = (1u64 << 40).into();
    });
    let err = load_err(dir.path(), "identity");
    assert!(
        err.contains("more elements than memory can address")
            || err.contains("fewer than the network"),
        "{err}"
    );

    // A hundred stages: shifts past the width of usize are an error, not a panic.
    write_checkpoint(dir.path(), FORMAT_VERSION);
    edit_config(dir.path(), |m| {
        let stage = m["generator"]["stages"][0].clone();
        m["generator"]["stages"] = serde_json::Value::Array(vec![stage; 100]);
    });
    load_err(dir.path(), "generator: 100 upsampling stages");
    write_checkpoint(dir.path(), FORMAT_VERSION);
    edit_config(dir.path(), |m| {
        let stage = m["attribute_trunk"]["stages"][0].clone();
        m["attribute_trunk"]["stages"] = serde_json::Value::Array(vec![stage; 70]);
    });
    load_err(dir.path(), "attribute_trunk: 70 stages");

    // An image side beyond any supported size.
    write_checkpoint(dir.path(), FORMAT_VERSION);
    edit_config(dir.path(), |m| m["image_size"] = (1u64 << 40).into());
    load_err(dir.path(), "image_size");
}

#[test]
fn garbage_metadata_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text, needle) in [
        ("state.json", "", "state.json"),
        ("state.json", "{\"format_version\": \"one\"}", "state.json"),
        ("state.json", "[1, 2, 3]", "state.json"),
        ("config.json", "{\"model\": 7}", "config.json"),
        ("config.json", "\u{feff}{", "config.json"),
        ("config.json", "{}", "config.json"),
    ] {
        write_checkpoint(dir.path(), FORMAT_VERSION);
        std::fs::write(dir.path().join(file), text).unwrap();
        load_err(dir.path(), needle);
    }
    write_checkpoint(dir.path(), FORMAT_VERSION);
    std::fs::write(dir.path().join("state.json"), [0xff, 0xfe, 0x00]).unwrap();
    load_err(dir.path(), "state.json");
}
