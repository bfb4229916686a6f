//! Disks that refuse writes: an unwritable run directory and a full disk are one clear
//! error before training, and a disk that fills up by checkpoint time is a clear error
//! that keeps the previous checkpoint intact.
//!
//! The full-disk and read-only cases mount a small tmpfs, which needs root (CI and this
//! project's machines run as root); elsewhere they say so and skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::micro_config;

/// A tmpfs mounted on a fresh temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if status.success() {
            Some(Tmpfs { dir })
        } else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            None
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn trainer(args: &[&str], config: &Path, runs: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("RAYON_NUM_THREADS", "2")
        .arg("--config")
        .arg(config)
        .args(args)
        .args(["--quiet", "--no-eval", "--runs-dir"])
        .arg(runs)
        .output()
        .expect("run trainer")
}

fn write_config(dir: &Path) -> PathBuf {
    let mut config = micro_config();
    config.schedule.sample_every = 1_000;
    config.schedule.keep_checkpoints = 1;
    let path = dir.join("micro.toml");
    std::fs::write(&path, config.to_toml().expect("toml")).expect("write config");
    path
}

/// Fill the file system of `dir` until fewer than `leave` bytes are free.
fn fill(dir: &Path, leave: u64) {
    let free = |d: &Path| {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(d)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df output")
    };
    let avail = free(dir);
    let size = avail.saturating_sub(leave) as usize;
    // Written, not truncated to size: tmpfs only counts pages that hold data.
    std::fs::write(dir.join("filler"), vec![1u8; size]).expect("fill the disk");
    assert!(free(dir) <= leave + 4096, "the disk is not full");
}

fn resume(run: &str, steps: u64) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("RAYON_NUM_THREADS", "2")
        .args([
            "--resume",
            run,
            "--steps",
            &steps.to_string(),
            "--quiet",
            "--no-eval",
        ])
        .output()
        .expect("resume")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The run must have failed; its stderr, also printed for the record.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", stderr(out));
    let err = stderr(out);
    eprintln!("{err}");
    err
}

#[test]
fn a_run_directory_that_cannot_be_created_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").expect("write");
    let out = trainer(&["--steps", "1"], &config, &file.join("runs"));
    let err = refused(&out);
    assert!(err.contains("a-file"), "{err}");
    assert!(
        err.lines().count() <= 3,
        "one clear error, not a trace: {err}"
    );
}

#[test]
fn a_read_only_or_full_disk_is_refused_before_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());

    let Some(ro) = Tmpfs::mount("size=1m,ro") else {
        return;
    };
    let out = trainer(&["--steps", "1"], &config, &ro.path().join("runs"));
    let err = refused(&out);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!err.contains("step"), "refused before training: {err}");

    let Some(full) = Tmpfs::mount("size=1m") else {
        return;
    };
    fill(full.path(), 0);
    let out = trainer(&["--steps", "1"], &config, &full.path().join("runs"));
    let err = refused(&out);
    assert!(err.contains("No space left on device"), "{err}");
}

#[test]
fn a_disk_full_at_checkpoint_time_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let Some(disk) = Tmpfs::mount("size=16m") else {
        return;
    };
    let runs = disk.path().join("runs");
    let out = trainer(&["--steps", "2"], &config, &runs);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = runs.join("00000-micro");
    let checkpoint = run.join("checkpoints/step-00000002");
    let before = crate::common::checkpoint_files(&checkpoint);
    assert!(!before.is_empty());

    // Room for a few stats lines, not for a checkpoint.
    fill(disk.path(), 24 * 1024);
    let run_arg = run.to_string_lossy().to_string();
    let out = resume(&run_arg, 4);
    let err = refused(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("checkpoints"), "names the checkpoint: {err}");

    // The previous checkpoint is untouched and still the newest; no half-written one.
    let found = trainer::run::list_checkpoints(&run.join("checkpoints")).expect("list");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, checkpoint);
    assert_eq!(crate::common::checkpoint_files(&checkpoint), before);
    let hidden: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        hidden.is_empty(),
        "the failed write is cleaned up: {hidden:?}"
    );

    // Once there is room again, the run resumes from it.
    std::fs::remove_file(disk.path().join("filler")).expect("free");
    let out = resume(&run_arg, 4);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join("checkpoints/step-00000004/state.json").is_file());
}
