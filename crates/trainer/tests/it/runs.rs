//! Whole runs: the run directory, exact resume, stopping on request and on NaN.

use std::sync::atomic::Ordering;

use trainer::run::{list_checkpoints, read_state};
use trainer::{run, TrainError};

use crate::common::{checkpoint_files, micro_config, options};

#[test]
fn a_run_writes_its_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut opts = options(root.path());
    opts.evaluate = true;
    let summary = run(micro_config(), &opts).expect("run");
    assert_eq!(summary.steps, 4);
    assert!(!summary.interrupted);
    let dir = &summary.run_dir;
    assert!(dir.file_name().is_some_and(|n| n == "00000-micro"));
    for file in [
        "config.json",
        "stats.jsonl",
        "samples-00000002.png",
        "samples-final.png",
        "losses.png",
        "eval.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    // config.json is the resolved config and reads back.
    let saved = trainer::RunConfig::from_file(&dir.join("config.json")).expect("config.json");
    assert_eq!(saved.model, micro_config().model);
    // One stats line per step, with every loss of both processes.
    let stats = std::fs::read_to_string(dir.join("stats.jsonl")).expect("stats");
    let lines: Vec<serde_json::Value> = stats
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    for process in ["recon", "trans"] {
        for key in ["d", "i", "kl", "gr", "gd", "gc"] {
            let v = lines[3][format!("loss/{process}/{key}")].as_f64();
            assert!(v.is_some_and(f64::is_finite), "loss/{process}/{key}: {v:?}");
        }
        for key in [
            "score/{p}/d/real",
            "score/{p}/d/fake",
            "grad_norm/{p}/generator",
        ] {
            let key = key.replace("{p}", process);
            assert!(lines[3][&key].is_number(), "{key}");
        }
    }
    assert!(lines[3]["time/step_ms"].as_f64().is_some_and(|t| t > 0.0));
    assert!(lines[3]["time/data_wait_ms"].is_number());
    // The last 2 checkpoints are kept (steps 2 and 4), each complete.
    let checkpoints = list_checkpoints(&dir.join("checkpoints")).expect("list");
    let steps: Vec<u64> = checkpoints.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [2, 4]);
    let state = read_state(&checkpoints[1].1).expect("state.json");
    assert_eq!(state.step, 4);
    assert_eq!(
        osips_models::checkpoint::read_checkpoint_meta(&checkpoints[1].1)
            .expect("meta")
            .1
            .step,
        4
    );
    let eval = summary.eval.expect("evaluation");
    assert!(eval.swap_psnr.is_finite());
    for share in [
        eval.identity_top1,
        eval.attribute_top1,
        eval.identity_top1_baseline_source,
        eval.attribute_top1_baseline_attribute,
        eval.encoder_identity_top1,
    ] {
        assert!((0.0..=1.0).contains(&share), "{eval:?}");
    }
    // x_a shares its attributes with the truth y, so as a guess for the attribute
    // retrieval it beats chance by far, whatever the networks.
    assert!(eval.attribute_top1_baseline_attribute > 0.5, "{eval:?}");
    assert!(
        eval.identity_effect > 0.0 && eval.attribute_effect > 0.0,
        "{eval:?}"
    );
    // A second run gets the next number.
    let second = run(micro_config(), &options(root.path())).expect("second run");
    assert!(second
        .run_dir
        .file_name()
        .is_some_and(|n| n == "00001-micro"));
}

#[test]
fn resume_continues_bit_for_bit() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut straight = micro_config();
    straight.schedule.checkpoint_every = 100;
    let full = run(straight.clone(), &options(&root.path().join("a"))).expect("4 steps");

    let mut half = straight.clone();
    half.schedule.steps = Some(2);
    let first = run(half, &options(&root.path().join("b"))).expect("2 steps");
    assert_eq!(read_state(&first.checkpoint).expect("state").step, 2);
    let mut opts = options(&root.path().join("b"));
    opts.resume = Some(first.run_dir.clone());
    let resumed = run(straight, &opts).expect("resume to 4");
    assert_eq!(resumed.run_dir, first.run_dir);
    assert_eq!(resumed.steps, 4);

    let a = checkpoint_files(&full.checkpoint);
    let b = checkpoint_files(&resumed.checkpoint);
    assert_eq!(
        a.len(),
        6,
        "four networks, the EMA generator and the optimisers"
    );
    for ((name_a, bytes_a), (name_b, bytes_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(bytes_a == bytes_b, "{name_a} differs after resume");
    }
    // The logged losses of steps 3 and 4 are the same numbers too.
    let tail = |dir: &std::path::Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("stats.jsonl")).expect("stats");
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
                let map = v.as_object_mut().expect("object");
                map.retain(|k, _| k.starts_with("loss/") || k == "step");
                serde_json::to_string(map).expect("json")
            })
            .skip(2)
            .collect()
    };
    assert_eq!(tail(&full.run_dir), tail(&resumed.run_dir));
}

#[test]
fn a_stop_request_ends_with_a_checkpoint() {
    let root = tempfile::tempdir().expect("tempdir");
    let opts = options(root.path());
    opts.stop.store(true, Ordering::SeqCst);
    let summary = run(micro_config(), &opts).expect("run");
    assert!(summary.interrupted);
    assert_eq!(
        read_state(&summary.checkpoint).expect("state").step,
        summary.steps
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = micro_config();
    config.schedule.steps = Some(2);
    let first = run(config.clone(), &options(root.path())).expect("2 good steps");
    // Continue with a learning rate that blows the weights up.
    let mut bad = micro_config();
    bad.optimizer.lr = 1e30;
    let path = first.run_dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec(&bad).expect("json")).expect("write config");
    let mut opts = options(root.path());
    opts.resume = Some(first.run_dir.clone());
    config.schedule.steps = Some(20);
    let err = run(config, &opts).expect_err("the run must stop");
    match &err {
        TrainError::NonFinite { name, step, .. } => {
            assert!(*step >= 3, "{err}");
            assert!(!name.is_empty());
            let text = err.to_string();
            assert!(
                text.contains(name.as_str()) && text.contains(&format!("step {step}")),
                "{text}"
            );
        }
        other => panic!("expected a non-finite loss error, got {other}"),
    }
    let checkpoints = list_checkpoints(&first.run_dir.join("checkpoints")).expect("list");
    let (step, latest) = checkpoints.last().expect("a checkpoint").clone();
    assert_eq!(step, 2, "no checkpoint after the NaN");
    let mut trainer =
        trainer::Trainer::new(micro_config(), &candle_core::Device::Cpu).expect("trainer");
    trainer
        .load_weights(&latest)
        .expect("the last good checkpoint loads");
}

#[test]
fn periodic_evaluations_go_into_stats_as_eval_keys() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = micro_config();
    config.schedule.eval_every = Some(2);
    let summary = run(config, &options(root.path())).expect("run");
    let stats = std::fs::read_to_string(summary.run_dir.join("stats.jsonl")).expect("stats");
    let evals: Vec<serde_json::Value> = stats
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| v.get("eval/swap_psnr").is_some())
        .collect();
    let steps: Vec<u64> = evals.iter().filter_map(|v| v["step"].as_u64()).collect();
    assert_eq!(steps, [2, 4]);
    for key in [
        "eval/identity_top1",
        "eval/attribute_top1",
        "eval/n_identities",
    ] {
        assert!(evals[1][key].is_number(), "{key}");
    }
    let mut bad = micro_config();
    bad.schedule.eval_every = Some(0);
    assert!(bad.validate().is_err());
}

#[test]
fn resume_drops_stats_past_the_checkpoint_and_a_line_cut_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stats.jsonl");
    let mut text: String = (1..=5).map(|s| format!("{{\"step\":{s}}}\n")).collect();
    text.push_str("{\"eval/swap_psnr\":1.0,\"step\":3}\n{\"step\":6,\"loss");
    std::fs::write(&path, text).expect("write");
    assert_eq!(trainer::run::truncate_stats(&path, 3).expect("truncate"), 3);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"eval/swap_psnr\":1.0,\"step\":3}\n"
    );
    assert_eq!(trainer::run::truncate_stats(&path, 3).expect("again"), 0);
    let absent = dir.path().join("absent.jsonl");
    assert_eq!(trainer::run::truncate_stats(&absent, 3).expect("absent"), 0);
    assert!(!absent.exists());
}
