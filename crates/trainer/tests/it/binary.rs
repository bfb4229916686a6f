//! The `trainer` binary end to end.

use std::process::Command;

use crate::common::micro_config;

fn trainer() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.env("RAYON_NUM_THREADS", "2");
    cmd
}

#[test]
fn trains_from_a_config_file_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("micro.toml");
    std::fs::write(&config, micro_config().to_toml().expect("toml")).expect("write");
    let out = trainer()
        .args(["--config"])
        .arg(&config)
        .args(["--steps", "2", "--quiet", "--name", "cli", "--runs-dir"])
        .arg(dir.path().join("runs"))
        .output()
        .expect("run trainer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("run directory:"), "{stdout}");
    assert!(
        stdout.contains("swap"),
        "the evaluation is printed: {stdout}"
    );
    let run_dir = dir.path().join("runs/00000-cli");
    assert!(run_dir.join("eval.json").is_file());
    assert!(run_dir
        .join("checkpoints/step-00000002/state.json")
        .is_file());
}

#[test]
fn dry_run_prints_the_resolved_config() {
    let out = trainer()
        .args([
            "--dry-run",
            "--steps",
            "7",
            "--set",
            "loss.transform_lambda=0.5",
        ])
        .output()
        .expect("run trainer");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let config: trainer::RunConfig = toml::from_str(&text).expect("the dry run prints TOML");
    assert_eq!(config.schedule.steps, Some(7));
    assert_eq!(config.loss.transform_lambda, 0.5);
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], &str); 4] = [
        (&["--set", "nope=1"], "unknown key"),
        (
            &["--data", "folder:/definitely/not/here"],
            "/definitely/not/here",
        ),
        (&["--data", "ftp:x"], "ftp"),
        (
            &["--resume", "/definitely/not/a/run"],
            "/definitely/not/a/run",
        ),
    ];
    for (args, needle) in cases {
        let out = trainer()
            .args(args)
            .args(["--steps", "1", "--quiet", "--runs-dir"])
            .arg(dir.path())
            .output()
            .expect("run trainer");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn vgg16_init_without_the_weights_says_how_to_fetch_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = trainer()
        .args([
            "--preset", "paper", "--init", "vgg16", "--steps", "1", "--quiet",
        ])
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .env("HF_HOME", dir.path().join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("OSIPS_VGG16_WEIGHTS")
        .output()
        .expect("run trainer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("cargo xtask fetch-weights"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
