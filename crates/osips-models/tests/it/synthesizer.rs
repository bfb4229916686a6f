//! `Synthesizer`: loading a checkpoint directory as the trainer writes it, and every
//! inference method against the networks it wraps.

use candle_core::{Device, Tensor};
use osips_models::checkpoint::GENERATOR_EMA_FILE;
use osips_models::{Synthesizer, FORMAT_VERSION};

use crate::testutil::{images, tiny};

/// A checkpoint directory laid out as the trainer writes it, with fresh networks; the
/// generator's weights double as its moving average.
pub(crate) fn write_checkpoint(dir: &std::path::Path, version: u32) -> osips_models::Networks {
    let config = tiny();
    let nets = osips_models::Networks::new(&config, 3, &Device::Cpu).unwrap();
    nets.save(dir).unwrap();
    nets.generator_params
        .save(&dir.join(GENERATOR_EMA_FILE))
        .unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({ "model": config, "name": "t" }).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(r#"{{"format_version": {version}, "preset": "tiny", "step": 7}}"#),
    )
    .unwrap();
    nets
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn every_method_is_the_networks_in_eval_mode() {
    let dir = tempfile::tempdir().unwrap();
    let nets = write_checkpoint(dir.path(), FORMAT_VERSION);
    let model = Synthesizer::load(dir.path()).unwrap();
    assert_eq!(model.step(), 7);
    let s = model.image_size();
    let who = images(2, s, 1);
    let how = images(2, s, 2);

    let swapped = model.swap(&who, &how).unwrap();
    assert_eq!(swapped.dims(), &[2, 3, s, s]);
    let identity = nets.identity.forward_t(&who, false).unwrap().identity;
    let attribute = nets.attribute.forward_t(&how, false).unwrap().mean;
    let direct = nets
        .generator
        .forward_t(&identity, &attribute, false)
        .unwrap();
    assert_eq!(max_diff(&swapped, &direct), 0.0);

    // Open set: seeded, identity-major, the same z for every identity.
    let a = model.sample(&who, 3, 11).unwrap();
    assert_eq!(a.dims(), &[6, 3, s, s]);
    assert_eq!(max_diff(&a, &model.sample(&who, 3, 11).unwrap()), 0.0);
    assert!(max_diff(&a, &model.sample(&who, 3, 12).unwrap()) > 1e-3);
    let z = osips_models::seeded_normal((3, tiny().attribute_dim), 11, &Device::Cpu).unwrap();
    let first = model
        .generate(
            &identity.narrow(0, 1, 1).unwrap().repeat((3, 1)).unwrap(),
            &z,
        )
        .unwrap();
    assert_eq!(max_diff(&a.narrow(0, 3, 3).unwrap(), &first), 0.0);

    // Morph: the ends are the two swaps.
    let other = images(2, s, 3);
    let strip = model.morph(&who, &how, &other, 4).unwrap();
    assert_eq!(strip.dims(), &[8, 3, s, s]);
    let to = model.swap(&who, &other).unwrap();
    assert!(
        max_diff(
            &strip.narrow(0, 0, 1).unwrap(),
            &swapped.narrow(0, 0, 1).unwrap()
        ) < 1e-5
    );
    assert!(
        max_diff(
            &strip.narrow(0, 7, 1).unwrap(),
            &to.narrow(0, 1, 1).unwrap()
        ) < 1e-5
    );

    // Frontalize: one frontal face's attributes for every input.
    let frontal = images(1, s, 4);
    let front = model.frontalize(&who, &frontal).unwrap();
    let by_swap = model
        .swap(&who, &frontal.repeat((2, 1, 1, 1)).unwrap())
        .unwrap();
    // (A batch of one and a batch of two round differently inside the matmuls.)
    let d = max_diff(&front, &by_swap);
    assert!(d < 1e-4, "frontalize vs swap: {d}");

    let distance = model.reconstruction_distance(&who).unwrap();
    assert_eq!(distance.dims(), &[2]);
    for d in distance.to_vec1::<f32>().unwrap() {
        assert!((0.0..=2.0).contains(&d), "distance {d}");
    }
}

#[test]
fn bad_checkpoints_and_inputs_are_clear_errors() {
    let missing = Synthesizer::load("/nonexistent/checkpoint").unwrap_err();
    assert!(
        missing.to_string().contains("not a checkpoint directory"),
        "{missing}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), FORMAT_VERSION + 1);
    let version = Synthesizer::load(dir.path()).unwrap_err().to_string();
    assert!(version.contains("format version"), "{version}");

    write_checkpoint(dir.path(), FORMAT_VERSION);
    std::fs::remove_file(dir.path().join(GENERATOR_EMA_FILE)).unwrap();
    let ema = Synthesizer::load(dir.path()).unwrap_err().to_string();
    assert!(ema.contains(GENERATOR_EMA_FILE), "{ema}");

    write_checkpoint(dir.path(), FORMAT_VERSION);
    let model = Synthesizer::load(dir.path()).unwrap();
    let s = model.image_size();
    let batch = model.swap(&images(2, s, 1), &images(3, s, 2)).unwrap_err();
    assert!(batch.to_string().contains("batch"), "{batch}");
    let size = model
        .swap(&images(1, s / 2, 1), &images(1, s / 2, 2))
        .unwrap_err();
    assert!(size.to_string().contains("expected"), "{size}");
    assert!(model.sample(&images(1, s, 1), 0, 0).is_err());
    assert!(model
        .morph(&images(1, s, 1), &images(1, s, 2), &images(1, s, 3), 1)
        .is_err());
    assert!(model
        .frontalize(&images(2, s, 1), &images(2, s, 2))
        .is_err());
}
