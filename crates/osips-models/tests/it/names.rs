//! The checkpoint name contract: snapshots of sorted names and shapes on `tiny`, and no
//! silent sharing of variables.

use candle_core::Device;
use expect_test::expect_file;
use osips_models::{networks::IdentityNet, NetworkKind, ParamSet, Preset};

use crate::testutil::{networks, render_shapes, tiny};

#[test]
fn tensor_names_and_shapes_are_frozen() {
    let nets = networks(Preset::Tiny, 0);
    let snapshots = [
        (
            NetworkKind::Identity,
            expect_file!["snapshots/identity.txt"],
        ),
        (
            NetworkKind::Attribute,
            expect_file!["snapshots/attribute.txt"],
        ),
        (
            NetworkKind::Generator,
            expect_file!["snapshots/generator.txt"],
        ),
        (
            NetworkKind::Discriminator,
            expect_file!["snapshots/discriminator.txt"],
        ),
    ];
    for (kind, snapshot) in snapshots {
        snapshot.assert_eq(&render_shapes(&nets.params(kind).shapes()));
    }
}

/// Counts the names the layers request through a recording wrapper and checks that each
/// one became its own variable.
#[test]
fn every_requested_name_is_its_own_variable() {
    let nets = networks(Preset::Tiny, 0);
    let expected_counts = [
        (NetworkKind::Identity, 6 * 6 + 3 * 2),
        (NetworkKind::Attribute, 6 * 6 + 2 * 2),
        (NetworkKind::Generator, 2 + 4 + 4 * 5 + 2),
        (NetworkKind::Discriminator, 2 + 3 * 5 + 2),
    ];
    for (kind, count) in expected_counts {
        let params = nets.params(kind);
        assert_eq!(params.len(), count, "{kind:?}");
        let distinct: std::collections::HashSet<_> =
            params.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(distinct.len(), count);
        // Every variable is a distinct storage: setting one never changes another.
        let vars = params.named_vars();
        let before: Vec<f32> = vars
            .iter()
            .map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .get(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .collect();
        vars[0]
            .1
            .set(&(vars[0].1.as_tensor() + 1000.0).unwrap())
            .unwrap();
        for (i, (name, v)) in vars.iter().enumerate().skip(1) {
            let now: f32 = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .get(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(now, before[i], "{name} changed with {}", vars[0].0);
        }
    }
}

#[test]
fn requesting_a_name_twice_is_an_error() {
    let params = ParamSet::new(0);
    let vb = params.var_builder(&Device::Cpu);
    IdentityNet::new(&tiny(), vb.clone()).expect("first");
    let err = IdentityNet::new(&tiny(), vb).expect_err("second build shares names");
    let message = err.to_string();
    assert!(message.contains("requested twice"), "{message}");
}

#[test]
fn initialisation_is_a_function_of_the_seed() {
    let a = networks(Preset::Tiny, 7);
    let b = networks(Preset::Tiny, 7);
    let c = networks(Preset::Tiny, 8);
    for kind in NetworkKind::ALL {
        let (va, vb, vc) = (
            a.params(kind).named_vars(),
            b.params(kind).named_vars(),
            c.params(kind).named_vars(),
        );
        let mut any_differs = false;
        for ((name, x), ((_, y), (_, z))) in va.iter().zip(vb.iter().zip(vc.iter())) {
            let x: Vec<f32> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let y: Vec<f32> = y.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let z: Vec<f32> = z.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(x, y, "{name}");
            any_differs |= x != z;
        }
        assert!(any_differs, "{kind:?}: seeds 7 and 8 gave the same weights");
    }
}
