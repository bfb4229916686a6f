//! Forward shapes on both presets at batch 1 and 8, reparameterisation, and shape errors.

use candle_core::{Device, Tensor};
use osips_models::{ModelError, Networks, Preset};

use crate::testutil::{images, networks};

fn check_shapes(nets: &Networks, n: usize) {
    let cfg = &nets.config;
    let s = cfg.image_size;
    let x = images(n, s, 11);
    for train in [true, false] {
        let id = nets.identity.forward_t(&x, train).unwrap();
        assert_eq!(id.identity.dims(), [n, cfg.identity_dim]);
        assert_eq!(id.features.dims(), [n, cfg.feature_dim]);
        assert_eq!(id.logits.dims(), [n, cfg.n_identities]);
        let post = nets.attribute.forward_t(&x, train).unwrap();
        assert_eq!(post.mean.dims(), [n, cfg.attribute_dim]);
        assert_eq!(post.log_std.dims(), [n, cfg.attribute_dim]);
        let r = osips_models::seeded_normal((n, cfg.attribute_dim), 5, &Device::Cpu).unwrap();
        let z = post.sample(&r).unwrap();
        let fake = nets.generator.forward_t(&id.identity, &z, train).unwrap();
        assert_eq!(fake.dims(), [n, 3, s, s]);
        let d = nets.discriminator.forward_t(&fake, train).unwrap();
        assert_eq!(d.logit.dims(), [n]);
        let last = *cfg.discriminator.channels.last().unwrap();
        assert_eq!(d.features.dims(), [n, last, 4, 4]);
    }
}

#[test]
fn tiny_forward_shapes_batch_1_and_8() {
    let nets = networks(Preset::Tiny, 0);
    check_shapes(&nets, 1);
    check_shapes(&nets, 8);
}

#[test]
fn paper_forward_shapes_batch_1_and_8() {
    let nets = networks(Preset::Paper, 0);
    check_shapes(&nets, 1);
    check_shapes(&nets, 8);
}

#[test]
fn reparameterisation_uses_the_noise_passed_in() {
    let nets = networks(Preset::Tiny, 0);
    let post = nets.attribute.forward_t(&images(2, 64, 1), false).unwrap();
    let zero = Tensor::zeros((2, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let z = post.sample(&zero).unwrap();
    let diff: f32 = (z - &post.mean)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(diff, 0.0);
    let one = Tensor::ones((2, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let z = post.sample(&one).unwrap();
    let expected = (&post.mean + post.log_std.exp().unwrap()).unwrap();
    let diff: f32 = (z - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-6);
    assert!(matches!(
        post.sample(&Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap()),
        Err(ModelError::Shape { .. })
    ));
}

#[test]
fn eval_mode_is_deterministic_and_train_mode_updates_running_stats() {
    let nets = networks(Preset::Tiny, 0);
    let x = images(4, 64, 2);
    let a: Vec<f32> = nets
        .discriminator
        .forward_t(&x, false)
        .unwrap()
        .logit
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = nets
        .discriminator
        .forward_t(&x, false)
        .unwrap()
        .logit
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
    let bn = nets.discriminator.layers[1].bn.as_ref().unwrap();
    let before: Vec<f32> = bn.running_mean.as_tensor().to_vec1().unwrap();
    nets.discriminator.forward_t(&x, true).unwrap();
    let after: Vec<f32> = bn.running_mean.as_tensor().to_vec1().unwrap();
    assert_ne!(before, after);
    let c: Vec<f32> = nets
        .discriminator
        .forward_t(&x, false)
        .unwrap()
        .logit
        .to_vec1()
        .unwrap();
    assert_ne!(a, c, "eval mode must use the updated running statistics");
}

#[test]
fn wrong_input_shapes_are_typed_errors() {
    let nets = networks(Preset::Tiny, 0);
    let wrong_size = images(2, 32, 0);
    let err = nets.identity.forward_t(&wrong_size, false).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Shape {
                network: "IdentityNet",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("[2, 3, 32, 32]"), "{err}");
    let gray = Tensor::zeros((2, 1, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        nets.attribute.forward_t(&gray, false),
        Err(ModelError::Shape { .. })
    ));
    assert!(matches!(
        nets.discriminator.forward_t(&gray, false),
        Err(ModelError::Shape { .. })
    ));
    let id = Tensor::zeros((2, 128), candle_core::DType::F32, &Device::Cpu).unwrap();
    let z = Tensor::zeros((3, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        nets.generator.forward_t(&id, &z, false),
        Err(ModelError::Shape { .. })
    ));
    let z = Tensor::zeros((2, 63), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        nets.generator.forward_t(&id, &z, false),
        Err(ModelError::Shape { .. })
    ));
}

#[test]
fn inconsistent_configs_are_rejected() {
    let mut cfg = osips_models::ModelConfig::tiny(10);
    cfg.image_size = 128;
    let err = Networks::new(&cfg, 0, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Config(_)), "{err}");
    let cfg = osips_models::ModelConfig::tiny(0);
    assert!(Networks::new(&cfg, 0, &Device::Cpu).is_err());
}
