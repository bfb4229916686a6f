//! The soak test: the default job for an hour, its resident memory sampled from outside.
//!
//! Slow: it runs only with `OSIPS_SLOW_TESTS=1`, and should be built in release so that
//! the trainer under test is the one users run:
//!
//! ```text
//! OSIPS_SLOW_TESTS=1 cargo test --release -p trainer --test it soak -- --nocapture
//! ```
//!
//! `OSIPS_SOAK_MINUTES` changes the hour, `OSIPS_SOAK_RUNS_DIR` keeps the run directory
//! (a temporary one otherwise), and `OSIPS_SOAK_ARGS` appends trainer flags (split on
//! whitespace). The samples are written to `memory.csv` in the run directory.
//!
//! Checked: after a warm-up (the first tenth of the run, at least two minutes), the
//! least-squares slope of resident memory over time stays under 16 MiB per hour, and
//! `stats.jsonl` has a line for step 1 and every `log_every`-th step up to the last one,
//! with no step missing or repeated.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::slow_tests;

const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const MAX_SLOPE_MIB_PER_HOUR: f64 = 16.0;

/// Resident set size of a live process in MiB, from `/proc/<pid>/status` (Linux).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x / n, sy + y / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), &(x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    sxy / sxx
}

/// The steps of the training lines of `stats.jsonl` (evaluation lines left out).
fn logged_steps(stats: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(stats).expect("read stats.jsonl");
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"))
        .filter(|v| v.get("time/step_ms").is_some())
        .map(|v| v["step"].as_u64().expect("a step"))
        .collect()
}

/// The steps a run of `last` steps logs at `log_every`: step 1, then every multiple.
fn expected_steps(last: u64, log_every: u64) -> Vec<u64> {
    let mut steps: Vec<u64> = (1..=last).filter(|s| s % log_every == 0).collect();
    if steps.first() != Some(&1) {
        steps.insert(0, 1);
    }
    steps
}

#[test]
fn slope_and_step_helpers() {
    let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
    assert!((slope(&line) - 3.0).abs() < 1e-12);
    assert_eq!(expected_steps(35, 10), vec![1, 10, 20, 30]);
    assert_eq!(expected_steps(3, 1), vec![1, 2, 3]);
}

#[test]
fn soak_memory_stays_flat_and_stats_have_no_gaps() {
    if !slow_tests() {
        eprintln!("skipped: set OSIPS_SLOW_TESTS=1 (an hour; build with --release)");
        return;
    }
    let minutes: f64 = std::env::var("OSIPS_SOAK_MINUTES")
        .ok()
        .map(|m| m.parse().expect("OSIPS_SOAK_MINUTES is a number"))
        .unwrap_or(60.0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let runs_dir = std::env::var_os("OSIPS_SOAK_RUNS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("runs"));
    let extra: Vec<String> = std::env::var("OSIPS_SOAK_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();

    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "--minutes",
            &minutes.to_string(),
            "--quiet",
            "--name",
            "soak",
        ])
        .arg("--runs-dir")
        .arg(&runs_dir)
        .args(&extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start trainer");
    let pid = child.id();
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for trainer") {
            break status;
        }
        if let Some(rss) = rss_mib(pid) {
            samples.push((started.elapsed().as_secs_f64(), rss));
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let stdout = child
        .stdout
        .take()
        .map(|mut s| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut s, &mut text).expect("read stdout");
            text
        })
        .unwrap_or_default();
    assert!(status.success(), "trainer failed: {stdout}");
    println!("{stdout}");

    let run_dir = std::fs::read_dir(&runs_dir)
        .expect("runs dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.to_string_lossy().ends_with("-soak"))
        .max()
        .expect("a soak run directory");
    let csv: String = std::iter::once("seconds,rss_mib\n".to_string())
        .chain(samples.iter().map(|(t, m)| format!("{t:.1},{m:.2}\n")))
        .collect();
    std::fs::write(run_dir.join("memory.csv"), csv).expect("write memory.csv");

    let total = started.elapsed().as_secs_f64();
    let warm_up = (total / 10.0).max(120.0);
    let after: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|&(t, _)| t >= warm_up)
        .collect();
    assert!(
        after.len() >= 10,
        "too few samples after warm-up: {}",
        after.len()
    );
    let mib_per_hour = slope(&after) * 3600.0;
    let (lo, hi) = after
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &(_, m)| {
            (lo.min(m), hi.max(m))
        });
    println!(
        "soak: {:.1} min, {} samples; after {:.0} s of warm-up RSS {lo:.1}..{hi:.1} MiB, \
         slope {mib_per_hour:+.2} MiB/hour",
        total / 60.0,
        samples.len(),
        warm_up
    );
    assert!(
        mib_per_hour.abs() < MAX_SLOPE_MIB_PER_HOUR,
        "resident memory drifts {mib_per_hour:+.2} MiB/hour (RSS {lo:.1}..{hi:.1} MiB)"
    );

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).expect("config.json"))
            .expect("config JSON");
    let log_every = config["schedule"]["log_every"].as_u64().expect("log_every");
    let steps = logged_steps(&run_dir.join("stats.jsonl"));
    let last = *steps.last().expect("a logged step");
    assert_eq!(
        steps,
        expected_steps(last, log_every),
        "stats.jsonl has gaps"
    );
}
