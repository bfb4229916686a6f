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

    // Optional keys are absent from the serialized config while unset; they can still
    // be set, and set back to unset with null.
    assert_eq!(config.schedule.eval_every, None);
    config
        .apply_overrides(&["schedule.eval_every=500".into()])
        .expect("an optional key");
    assert_eq!(config.schedule.eval_every, Some(500));
    config
        .apply_overrides(&["schedule.eval_every=null".into()])
        .expect("unset it");
    assert_eq!(config.schedule.eval_every, None);
    for bad in [
        "schedule.no_such_key=1",
        "nope.deeper=1",
        "loss.identity.deeper=1",
    ] {
        let err = config.apply_overrides(&[bad.into()]).expect_err(bad);
        assert!(err.to_string().contains("unknown key"), "{bad}: {err}");
    }
}
