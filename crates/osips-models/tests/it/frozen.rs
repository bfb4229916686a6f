//! `ops::frozen`: the gradient flows through a frozen network to its input unchanged, but
//! none of its parameters gets one; BatchNorm's running statistics still update.

use candle_core::{Tensor, Var};
use osips_models::{ops, ParamSet, Preset};

use crate::testutil::{images, networks};

/// `(input gradient, names of the parameters with a gradient)` of `loss(x)`.
fn grads_of(
    x: &Var,
    params: &ParamSet,
    loss: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> (Vec<f32>, Vec<String>) {
    let grads = loss(x.as_tensor()).unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).expect("input gradient");
    let dx = dx.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let with_grad = params
        .trainable_vars()
        .into_iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
        .map(|(name, _)| name)
        .collect();
    (dx, with_grad)
}

fn sum_sq(t: &Tensor) -> candle_core::Result<Tensor> {
    t.sqr()?.sum_all()
}

#[test]
fn frozen_networks_pass_input_gradients_but_get_none() {
    let nets = networks(Preset::Tiny, 3);
    let x = Var::from_tensor(&images(2, 64, 4)).unwrap();

    // D in train mode (as in the adversarial pass), C (the identity network) in eval mode.
    let d = |x: &Tensor| sum_sq(&nets.discriminator.forward_t(x, true).unwrap().features);
    let c = |x: &Tensor| sum_sq(&nets.identity.forward_t(x, false).unwrap().features);

    for (loss, params) in [
        (&d as &dyn Fn(&Tensor) -> _, &nets.discriminator_params),
        (&c, &nets.identity_params),
    ] {
        let (dx, with_grad) = grads_of(&x, params, loss);
        assert!(!with_grad.is_empty());
        let (dx_frozen, with_grad_frozen) = ops::frozen(|| grads_of(&x, params, loss));
        assert_eq!(with_grad_frozen, Vec::<String>::new());
        assert_eq!(dx, dx_frozen, "the input gradient must not change");
        assert!(dx.iter().any(|v| *v != 0.0));
    }
    assert!(!ops::is_frozen(), "frozen() restores the previous state");
}

#[test]
fn frozen_train_mode_still_updates_running_statistics() {
    let nets = networks(Preset::Tiny, 5);
    let bn = nets
        .discriminator_params
        .named_vars()
        .into_iter()
        .find(|(name, _)| name.ends_with("running_mean"))
        .map(|(_, v)| v)
        .expect("a BatchNorm in D");
    let before = bn.as_tensor().to_vec1::<f32>().unwrap();
    ops::frozen(|| nets.discriminator.forward_t(&images(2, 64, 6), true)).unwrap();
    let after = bn.as_tensor().to_vec1::<f32>().unwrap();
    assert_ne!(before, after);
}

#[test]
fn frozen_is_restored_after_a_panic() {
    let caught = std::panic::catch_unwind(|| ops::frozen(|| panic!("inside")));
    assert!(caught.is_err());
    assert!(!ops::is_frozen());
}
