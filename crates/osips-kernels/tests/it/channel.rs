//! The channel ops (BatchNorm train/eval, bias, ReLU, LeakyReLU, 2×2 max-pool) against
//! candle's own compositions: forward values and every gradient, on random shapes
//! including batch 1, odd sizes and rank 2.

use candle_core::{Device, Result, Tensor, Var};
use osips_kernels::{
    add_channel_bias, batch_norm_train, batch_norm_train_act, batch_norm_train_reference,
    channel_scale_shift, channel_scale_shift_act, leaky_relu, max_pool2x2, max_pool2x2_reference,
    relu, FusedActivation,
};

use super::{assert_close, Lcg};

fn random_dims(rng: &mut Lcg, rank: usize) -> Vec<usize> {
    let mut dims = vec![[1, 1, 2, 3, 5][rng.range(0, 4)], rng.range(1, 9)];
    for _ in 2..rank {
        dims.push(rng.range(1, 9));
    }
    dims
}

/// Like `assert_close`, but relative to at least `floor`: the input gradient of BatchNorm
/// sums three terms that cancel exactly when a channel has one or two values, leaving only
/// rounding noise to compare, so it is compared at the scale of `gy·w/σ` (about 1 here).
fn assert_close_floor(what: &str, a: &Tensor, b: &Tensor, floor: f32) -> Result<()> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(a.len(), b.len(), "{what}: length mismatch");
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff / scale <= 1e-4,
        "{what}: error {diff:e} at scale {scale:e}"
    );
    Ok(())
}

fn grad(store: &candle_core::backprop::GradStore, v: &Var, what: &str) -> Result<Tensor> {
    store
        .get(v)
        .cloned()
        .ok_or_else(|| candle_core::Error::msg(format!("no gradient for {what}")))
}

#[test]
fn batch_norm_train_matches_candle_forward_and_gradients() -> Result<()> {
    let dev = Device::Cpu;
    for seed in 0..40u64 {
        let mut rng = Lcg(seed * 104729 + 3);
        let rank = if seed % 5 == 0 { 2 } else { 4 };
        let dims = random_dims(&mut rng, rank);
        let c = dims[1];
        let x = Var::randn(0.5f32, 2., dims.as_slice(), &dev)?;
        let w = Var::randn(1f32, 0.3, c, &dev)?;
        let b = Var::randn(0f32, 0.3, c, &dev)?;
        let ours = batch_norm_train(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
        let refr = batch_norm_train_reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
        let ctx = format!("dims {dims:?} seed {seed}");
        assert_close(&format!("bn y {ctx}"), &ours.y, &refr.y)?;
        assert_close(&format!("bn mean {ctx}"), &ours.mean, &refr.mean)?;
        assert_close(&format!("bn var {ctx}"), &ours.var, &refr.var)?;

        let gy = Tensor::randn(0f32, 1., dims.as_slice(), &dev)?;
        let g_ours = (&ours.y * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refr.y * &gy)?.sum_all()?.backward()?;
        for (v, what) in [(&x, "x"), (&w, "weight"), (&b, "bias")] {
            let (a, r) = (grad(&g_ours, v, what)?, grad(&g_ref, v, what)?);
            assert_close_floor(&format!("bn d{what} {ctx}"), &a, &r, 1.0)?;
        }
    }
    Ok(())
}

#[test]
fn channel_scale_shift_and_bias_match_candle() -> Result<()> {
    let dev = Device::Cpu;
    for seed in 0..30u64 {
        let mut rng = Lcg(seed * 7 + 1);
        let rank = if seed % 4 == 0 { 2 } else { 4 };
        let dims = random_dims(&mut rng, rank);
        let c = dims[1];
        let bs: Vec<usize> = (0..rank).map(|d| if d == 1 { c } else { 1 }).collect();
        let x = Var::randn(0f32, 1., dims.as_slice(), &dev)?;
        let a = Var::randn(0f32, 1., c, &dev)?;
        let k = Var::randn(0f32, 1., c, &dev)?;
        let gy = Tensor::randn(0f32, 1., dims.as_slice(), &dev)?;
        let ctx = format!("dims {dims:?} seed {seed}");

        let ours = channel_scale_shift(x.as_tensor(), a.as_tensor(), k.as_tensor())?;
        let refr = x
            .as_tensor()
            .broadcast_mul(&a.as_tensor().reshape(bs.as_slice())?)?
            .broadcast_add(&k.as_tensor().reshape(bs.as_slice())?)?;
        assert_close(&format!("scale-shift y {ctx}"), &ours, &refr)?;
        let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refr * &gy)?.sum_all()?.backward()?;
        for (v, what) in [(&x, "x"), (&a, "scale"), (&k, "shift")] {
            assert_close(
                &format!("scale-shift d{what} {ctx}"),
                &grad(&g_ours, v, what)?,
                &grad(&g_ref, v, what)?,
            )?;
        }

        let ours = add_channel_bias(x.as_tensor(), k.as_tensor())?;
        let refr = x
            .as_tensor()
            .broadcast_add(&k.as_tensor().reshape(bs.as_slice())?)?;
        assert_close(&format!("bias y {ctx}"), &ours, &refr)?;
        let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refr * &gy)?.sum_all()?.backward()?;
        for (v, what) in [(&x, "x"), (&k, "bias")] {
            assert_close(
                &format!("bias d{what} {ctx}"),
                &grad(&g_ours, v, what)?,
                &grad(&g_ref, v, what)?,
            )?;
        }
    }
    Ok(())
}

#[test]
fn activations_match_candle() -> Result<()> {
    let dev = Device::Cpu;
    for seed in 0..20u64 {
        let mut rng = Lcg(seed + 11);
        let dims = random_dims(&mut rng, if seed % 3 == 0 { 2 } else { 4 });
        let x = Var::randn(0f32, 1., dims.as_slice(), &dev)?;
        let gy = Tensor::randn(0f32, 1., dims.as_slice(), &dev)?;
        let ctx = format!("dims {dims:?} seed {seed}");
        type Pair<'a> = (
            &'a str,
            Box<dyn Fn(&Tensor) -> Result<Tensor>>,
            Box<dyn Fn(&Tensor) -> Result<Tensor>>,
        );
        let cases: [Pair<'_>; 3] = [
            ("relu", Box::new(relu), Box::new(|t: &Tensor| t.relu())),
            (
                "leaky 0.2",
                Box::new(|t: &Tensor| leaky_relu(t, 0.2)),
                Box::new(|t: &Tensor| t.maximum(&(t * 0.2)?)),
            ),
            (
                "leaky 0",
                Box::new(|t: &Tensor| leaky_relu(t, 0.0)),
                Box::new(|t: &Tensor| t.maximum(&(t * 0.0)?)),
            ),
        ];
        for (name, ours_f, ref_f) in cases {
            let ours = ours_f(x.as_tensor())?;
            let refr = ref_f(x.as_tensor())?;
            assert_close(&format!("{name} y {ctx}"), &ours, &refr)?;
            let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
            let g_ref = (&refr * &gy)?.sum_all()?.backward()?;
            assert_close(
                &format!("{name} dx {ctx}"),
                &grad(&g_ours, &x, "x")?,
                &grad(&g_ref, &x, "x")?,
            )?;
        }
    }
    Ok(())
}

#[test]
fn max_pool2x2_matches_the_reduction_and_routes_the_whole_gradient() -> Result<()> {
    let dev = Device::Cpu;
    for seed in 0..30u64 {
        let mut rng = Lcg(seed * 31 + 5);
        let (n, c) = ([1, 2, 3][rng.range(0, 2)], rng.range(1, 6));
        let (h, w) = (rng.range(2, 13), rng.range(2, 13));
        let x = Var::randn(0f32, 1., (n, c, h, w), &dev)?;
        let ours = max_pool2x2(x.as_tensor())?;
        let refr = max_pool2x2_reference(x.as_tensor())?;
        let ctx = format!("[{n},{c},{h},{w}] seed {seed}");
        assert_close(&format!("max-pool y {ctx}"), &ours, &refr)?;
        let gy = Tensor::randn(0f32, 1., ours.dims(), &dev)?;
        let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refr * &gy)?.sum_all()?.backward()?;
        let dx = grad(&g_ours, &x, "x")?;
        assert_close(&format!("max-pool dx {ctx}"), &dx, &grad(&g_ref, &x, "x")?)?;
        // The gradient is a permutation of gy plus zeros: nothing is lost or scaled.
        let total = |t: &Tensor| -> Result<f32> { t.abs()?.sum_all()?.to_scalar::<f32>() };
        let (a, b) = (total(&dx)?, total(&gy)?);
        assert!(
            (a - b).abs() <= 1e-4 * b.max(1.0),
            "{ctx}: |dx| {a} vs |gy| {b}"
        );
    }
    Ok(())
}

/// Why the networks do not use candle 0.11.1's `max_pool2d`: its backward multiplies the
/// gradient by the share of each window that attains the maximum (¼ for a unique
/// maximum) instead of dividing by the number of maxima. If this test starts failing,
/// candle has fixed it.
#[test]
fn candle_max_pool2d_backward_scales_the_gradient_by_a_quarter() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::arange(0f32, 16., &dev)?.reshape((1, 1, 4, 4))?)?;
    let candle = x.as_tensor().max_pool2d(2)?.sum_all()?.backward()?;
    let ours = max_pool2x2(x.as_tensor())?.sum_all()?.backward()?;
    let sum = |t: Tensor| -> Result<f32> { t.sum_all()?.to_scalar::<f32>() };
    assert_eq!(sum(grad(&ours, &x, "x")?)?, 4.0);
    assert_eq!(sum(grad(&candle, &x, "x")?)?, 1.0);
    Ok(())
}

#[test]
fn fused_normalisation_and_activation_match_the_composition() -> Result<()> {
    let dev = Device::Cpu;
    for seed in 0..30u64 {
        let mut rng = Lcg(seed * 613 + 9);
        let rank = if seed % 5 == 0 { 2 } else { 4 };
        let dims = random_dims(&mut rng, rank);
        let c = dims[1];
        let act = match seed % 3 {
            0 => FusedActivation::Relu,
            1 => FusedActivation::LeakyRelu(0.2),
            _ => FusedActivation::LeakyRelu(0.0),
        };
        let x = Var::randn(0.3f32, 1.5, dims.as_slice(), &dev)?;
        let w = Var::randn(1f32, 0.3, c, &dev)?;
        let b = Var::randn(0f32, 0.3, c, &dev)?;
        let gy = Tensor::randn(0f32, 1., dims.as_slice(), &dev)?;
        let ctx = format!("{act:?} dims {dims:?} seed {seed}");

        // train mode
        let ours = batch_norm_train_act(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5, act)?;
        let refr = batch_norm_train_reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
        let refy = act.apply_reference(&refr.y)?;
        assert_close(&format!("bn+act y {ctx}"), &ours.y, &refy)?;
        assert_close(&format!("bn+act mean {ctx}"), &ours.mean, &refr.mean)?;
        let g_ours = (&ours.y * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refy * &gy)?.sum_all()?.backward()?;
        for (v, what) in [(&x, "x"), (&w, "weight"), (&b, "bias")] {
            assert_close_floor(
                &format!("bn+act d{what} {ctx}"),
                &grad(&g_ours, v, what)?,
                &grad(&g_ref, v, what)?,
                1.0,
            )?;
        }

        // eval mode: scale and shift per channel
        let ours = channel_scale_shift_act(x.as_tensor(), w.as_tensor(), b.as_tensor(), act)?;
        let refy = act.apply_reference(&channel_scale_shift(
            x.as_tensor(),
            w.as_tensor(),
            b.as_tensor(),
        )?)?;
        assert_close(&format!("scale-shift+act y {ctx}"), &ours, &refy)?;
        let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
        let g_ref = (&refy * &gy)?.sum_all()?.backward()?;
        for (v, what) in [(&x, "x"), (&w, "scale"), (&b, "shift")] {
            assert_close(
                &format!("scale-shift+act d{what} {ctx}"),
                &grad(&g_ours, v, what)?,
                &grad(&g_ref, v, what)?,
            )?;
        }
    }
    Ok(())
}
