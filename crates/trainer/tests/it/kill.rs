//! The kill harness: training is killed with SIGKILL at random moments, many of them in
//! the middle of a checkpoint write (the micro model checkpoints every step, so most of
//! its time is spent writing). After each kill, every checkpoint in view must load
//! completely, the newest must not be older than before, and `--resume` must carry on.
//! At the end the run completes and `stats.jsonl` holds each step exactly once.
//!
//! 6 kills by default; 30 with `OSIPS_SLOW_TESTS=1`; `OSIPS_KILLS=N` sets the count.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use candle_core::Device;
use trainer::run::list_checkpoints;
use trainer::{RunConfig, Trainer};

use crate::common::{micro_config, slow_tests};

fn kills() -> usize {
    if let Some(n) = std::env::var("OSIPS_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return n;
    }
    if slow_tests() {
        30
    } else {
        6
    }
}

fn start(args: &[&str], runs: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("RAYON_NUM_THREADS", "2")
        .args(args)
        .args(["--quiet", "--runs-dir"])
        .arg(runs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trainer")
}

/// Everything a resume reads, from one checkpoint directory.
fn load_completely(dir: &Path) -> u64 {
    let config = RunConfig::from_file(&dir.join("config.json")).expect("config.json");
    let mut trainer = Trainer::for_checkpoint(config, &Device::Cpu, dir).expect("networks");
    trainer
        .load_weights(dir)
        .unwrap_or_else(|e| panic!("{} does not load: {e}", dir.display()));
    osips_models::Synthesizer::load(dir).expect("loads for inference");
    trainer::run::read_state(dir).expect("state.json").step
}

/// Hidden leftovers of an interrupted checkpoint write or removal, and temporary files.
fn leftovers(run_dir: &Path) -> usize {
    let hidden = std::fs::read_dir(run_dir.join("checkpoints"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    let tmp = std::fs::read_dir(run_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
                .count()
        })
        .unwrap_or(0);
    hidden + tmp
}

#[test]
fn killed_at_random_moments_every_checkpoint_in_view_loads_and_resume_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = dir.path().join("runs");
    let mut config = micro_config();
    config.name = "kill".into();
    config.schedule.steps = Some(1_000_000);
    config.schedule.checkpoint_every = 1;
    config.schedule.keep_checkpoints = 2;
    config.schedule.sample_every = 1_000_000;
    config.schedule.eval_identities = 0;
    let config_path = dir.path().join("kill.toml");
    std::fs::write(&config_path, config.to_toml().expect("toml")).expect("write config");
    let run_dir = runs.join("00000-kill");

    // A fixed xorshift sequence of delays: the same moments on every run of the test.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut delay = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(400 + state % 1600)
    };

    let n = kills();
    let mut newest = 0u64;
    let mut mid_write = 0;
    let mut fresh = true;
    for k in 0..n {
        let mut child = if fresh {
            // Before any checkpoint there is nothing to resume: start over.
            if runs.exists() {
                std::fs::remove_dir_all(&runs).expect("clear runs");
            }
            let config_arg = config_path.to_string_lossy().to_string();
            start(&["--config", &config_arg], &runs)
        } else {
            let run_arg = run_dir.to_string_lossy().to_string();
            start(&["--resume", &run_arg], &runs)
        };
        std::thread::sleep(delay());
        if let Some(status) = child.try_wait().expect("poll trainer") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("kill {k}: the trainer exited on its own ({status}): {err}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let left = leftovers(&run_dir);
        if left > 0 {
            mid_write += 1;
        }
        let found = list_checkpoints(&run_dir.join("checkpoints")).expect("list");
        for (step, path) in &found {
            assert_eq!(load_completely(path), *step, "{}", path.display());
        }
        let latest = found.last().map_or(0, |(s, _)| *s);
        assert!(
            latest >= newest,
            "kill {k}: the newest checkpoint went back from step {newest} to {latest}"
        );
        eprintln!(
            "kill {k}: newest checkpoint step {latest}, {} in view, {left} leftovers",
            found.len()
        );
        newest = latest;
        fresh = found.is_empty();
    }
    assert!(newest > 0, "no checkpoint was ever written");
    eprintln!("{n} kills, {mid_write} of them left a checkpoint write or removal half done");

    // The run completes from where the kills left it.
    let run_arg = run_dir.to_string_lossy().to_string();
    let target = (newest + 3).to_string();
    let out = start(&["--resume", &run_arg, "--steps", &target], &runs)
        .wait_with_output()
        .expect("final resume");
    assert!(
        out.status.success(),
        "final resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&run_dir), 0, "leftovers are removed on resume");
    let found = list_checkpoints(&run_dir.join("checkpoints")).expect("list");
    let (last, path) = found.last().expect("a final checkpoint");
    assert_eq!(*last, newest + 3);
    assert_eq!(load_completely(path), newest + 3);

    // Each step is in stats.jsonl exactly once (log_every = 1), in order.
    let text = std::fs::read_to_string(run_dir.join("stats.jsonl")).expect("stats");
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("a broken stats line {l:?}: {e}"))["step"]
                .as_u64()
                .expect("step")
        })
        .collect();
    assert_eq!(steps, (1..=newest + 3).collect::<Vec<u64>>());
}
