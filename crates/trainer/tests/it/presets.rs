//! The TOML presets in `data/presets/` are the presets of the code, and read back.

use osips_models::Preset;
use trainer::RunConfig;

fn check(preset: Preset) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/presets")
        .join(format!("{}.toml", preset.name()));
    let from_file = RunConfig::from_file(&path).expect("preset file");
    let from_code = RunConfig::preset(preset);
    assert_eq!(
        serde_json::to_value(&from_file).expect("json"),
        serde_json::to_value(&from_code).expect("json"),
        "{} differs from RunConfig::preset; regenerate it with `cargo run -p trainer -- --preset {} --dry-run`",
        path.display(),
        preset.name()
    );
    from_file.validate().expect("valid");
}

#[test]
fn tiny_preset_file_matches_the_code() {
    check(Preset::Tiny);
}

#[test]
fn paper_preset_file_matches_the_code() {
    check(Preset::Paper);
}

#[test]
fn unknown_keys_and_bad_overrides_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let mut text = RunConfig::preset(Preset::Tiny).to_toml().expect("toml");
    text.push_str("\n[extra]\nkey = 1\n");
    std::fs::write(&path, text).expect("write");
    let err = RunConfig::from_file(&path).expect_err("unknown section");
    assert!(err.to_string().contains("extra"), "{err}");

    let mut config = RunConfig::preset(Preset::Tiny);
    let err = config
        .apply_overrides(&["loss.no_such_weight=1".into()])
        .expect_err("unknown key");
    assert!(err.to_string().contains("loss.no_such_weight"), "{err}");
    config
        .apply_overrides(&["loss.transform_lambda=0.01".into()])
        .expect("override");
    assert_eq!(config.loss.transform_lambda, 0.01);
}
