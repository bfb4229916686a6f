//! The paper's update table, phase by phase: which networks each phase updates, and that
//! the three-backward A+G step gives exactly the gradients of the losses it is meant to.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use osips_data::{Dataset, Loader, SamplerState};
use osips_losses as losses;
use osips_models::{NetworkKind, Networks};
use trainer::optim::{add_grads, collect_grads, GradMap};
use trainer::phases::{
    discriminator_phase, generator_phase, identity_phase, process_noise, synthesize, PhaseOutput,
    Process, ProcessTensors,
};

use crate::common::micro_config;

struct Setup {
    nets: Networks,
    tensors: ProcessTensors,
    noise: Tensor,
    weights: losses::LossWeights,
}

fn setup(process: Process) -> Setup {
    let config = micro_config();
    let device = Device::Cpu;
    let dataset = Arc::new(Dataset::open(&config.data).expect("synthetic dataset"));
    let mut loader = Loader::new(dataset, &config.data, SamplerState::start(3)).expect("loader");
    let (batch, _) = loader.next_batch().expect("a batch");
    let data = match process {
        Process::Reconstruction => &batch.reconstruction,
        Process::Transformation => &batch.transformation,
    };
    let tensors = ProcessTensors::new(data, &config.loss, &device).expect("tensors");
    let noise = process_noise(
        5,
        0,
        process,
        data.source.n,
        config.model.attribute_dim,
        &device,
    )
    .expect("noise");
    let nets = Networks::new(&config.model, 11, &device).expect("networks");
    Setup {
        nets,
        tensors,
        noise,
        weights: config.loss,
    }
}

fn updated(output: &PhaseOutput) -> Vec<NetworkKind> {
    output.updates.iter().map(|(kind, _)| *kind).collect()
}

/// Every trainable variable of the network has a finite gradient, and not all are zero.
fn assert_full_gradient(nets: &Networks, kind: NetworkKind, grads: &GradMap) {
    let params = nets.params(kind);
    let names: Vec<String> = params
        .trainable_vars()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let got: Vec<&String> = grads.keys().collect();
    assert_eq!(
        got.len(),
        names.len(),
        "{kind:?}: gradients for {got:?}, variables {names:?}"
    );
    let mut norm = 0.0f32;
    for (name, g) in grads {
        let sq = g
            .sqr()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("norm");
        assert!(sq.is_finite(), "{kind:?} {name}: non-finite gradient");
        norm += sq;
    }
    assert!(norm > 0.0, "{kind:?}: all gradients are zero");
}

/// max |a − b| / max |b| over every variable of the two maps, which must name the same
/// variables.
fn rel_diff(a: &GradMap, b: &GradMap) -> f32 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut diff = 0.0f32;
    let mut scale = 0.0f32;
    for (name, ga) in a {
        let ga = ga
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("grad");
        let gb = b[name]
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("grad");
        for (x, y) in ga.iter().zip(&gb) {
            diff = diff.max((x - y).abs());
            scale = scale.max(y.abs());
        }
    }
    diff / scale.max(1e-12)
}

#[test]
fn discriminator_step_updates_d_only_with_the_gradient_of_l_d() {
    let s = setup(Process::Transformation);
    let synthesis = synthesize(&s.nets, &s.tensors, &s.noise).expect("synthesis");
    let out = discriminator_phase(&s.nets, &s.tensors, &synthesis, &s.weights).expect("D step");
    assert_eq!(updated(&out), vec![NetworkKind::Discriminator]);
    let got = &out.updates[0].1;
    assert_full_gradient(&s.nets, NetworkKind::Discriminator, got);

    let d = &s.nets.discriminator;
    let real = d.forward_t(&s.tensors.attribute, true).expect("D real");
    let fake = d.forward_t(&synthesis.fake.detach(), true).expect("D fake");
    let loss = losses::discriminator_loss(&real.logit, &fake.logit).expect("L_D");
    let grads = loss.backward().expect("backward");
    let want = collect_grads(&grads, &s.nets.discriminator_params);
    assert!(rel_diff(got, &want) < 1e-5);
    // x′ is detached: nothing of G or A is in the graph.
    assert!(collect_grads(&grads, &s.nets.generator_params).is_empty());
    assert!(collect_grads(&grads, &s.nets.attribute_params).is_empty());
}

#[test]
fn identity_step_updates_i_only() {
    let s = setup(Process::Transformation);
    let out = identity_phase(&s.nets, &s.tensors, &s.weights).expect("I step");
    assert_eq!(updated(&out), vec![NetworkKind::Identity]);
    assert_full_gradient(&s.nets, NetworkKind::Identity, &out.updates[0].1);
    let names: Vec<&str> = out.stats.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["loss/i", "acc/i"]);
}

/// L_KL and L_GR reach A and G; L_GD and L_GC reach G only; I and D get nothing.
fn check_generator_step(process: Process) {
    let mut s = setup(process);
    // At initialisation L_KL dominates A's gradient; weigh it down so that a leak of
    // L_GD + L_GC into A would stand out far above the tolerance.
    s.weights.kl = 1e-3;
    let synthesis = synthesize(&s.nets, &s.tensors, &s.noise).expect("synthesis");
    let out = generator_phase(&s.nets, &s.tensors, &synthesis, &s.weights).expect("A+G step");
    assert_eq!(
        updated(&out),
        vec![NetworkKind::Generator, NetworkKind::Attribute]
    );
    let got_g = &out.updates[0].1;
    let got_a = &out.updates[1].1;
    assert_full_gradient(&s.nets, NetworkKind::Generator, got_g);
    assert_full_gradient(&s.nets, NetworkKind::Attribute, got_a);

    // The direct computation: one graph from x_a through A and G, as the paper writes it.
    let (nets, t, w) = (&s.nets, &s.tensors, &s.weights);
    let identity = nets
        .identity
        .forward_t(&t.source, false)
        .expect("I")
        .identity
        .detach();
    let posterior = nets.attribute.forward_t(&t.attribute, true).expect("A");
    let z = posterior.sample(&s.noise).expect("z");
    let fake = nets.generator.forward_t(&identity, &z, true).expect("G");
    let l_gr =
        losses::reconstruction_loss(&t.attribute, &fake, &t.reconstruction_weights).expect("L_GR");
    let l_kl = losses::kl_loss(&posterior.mean, &posterior.log_std).expect("L_KL");
    let a_and_g = ((l_gr * w.reconstruction).expect("w") + (l_kl * w.kl).expect("w")).expect("sum");
    let grads = a_and_g.backward().expect("backward");
    let want_a = collect_grads(&grads, &nets.attribute_params);
    let g_part1 = collect_grads(&grads, &nets.generator_params);
    assert!(
        collect_grads(&grads, &nets.identity_params).is_empty(),
        "identity vector is detached"
    );

    let n = fake.dim(0).expect("n");
    let d_fake = nets.discriminator.forward_t(&fake, true).expect("D");
    let d_real = nets.discriminator.forward_t(&t.attribute, true).expect("D");
    let l_gd = losses::feature_matching_loss(&d_fake.features, &d_real.features).expect("L_GD");
    let both = Tensor::cat(&[&fake, &t.source], 0).expect("cat");
    let c = nets.identity.forward_t(&both, false).expect("C").features;
    let l_gc = losses::feature_matching_loss(
        &c.narrow(0, 0, n).expect("narrow"),
        &c.narrow(0, n, n).expect("narrow"),
    )
    .expect("L_GC");
    let adversarial = ((l_gd * w.gd).expect("w") + (l_gc * w.gc).expect("w")).expect("sum");
    let grads_adv = adversarial.backward().expect("backward");
    let g_part2 = collect_grads(&grads_adv, &nets.generator_params);
    let want_g = add_grads(g_part1, g_part2).expect("add");
    // A single backward of all four losses would leak L_GD + L_GC into A: make sure the
    // test could see that.
    let leak = collect_grads(&grads_adv, &nets.attribute_params);
    let naive_a = add_grads(want_a.clone(), leak).expect("add");
    let leak_size = rel_diff(&naive_a, &want_a);
    assert!(
        leak_size > 1e-2,
        "{process:?}: L_GD + L_GC would change A's gradient by only {leak_size:e}"
    );

    let (da, dg) = (rel_diff(got_a, &want_a), rel_diff(got_g, &want_g));
    assert!(
        da < 1e-4,
        "{process:?}: A gradient differs from ∂(L_KL + L_GR)/∂A by {da:e}"
    );
    assert!(
        dg < 1e-4,
        "{process:?}: G gradient differs from ∂(L_GR + L_GD + L_GC)/∂G by {dg:e}"
    );
}

#[test]
fn generator_step_transformation_routes_gradients_as_the_paper_says() {
    check_generator_step(Process::Transformation);
}

#[test]
fn generator_step_reconstruction_routes_gradients_as_the_paper_says() {
    check_generator_step(Process::Reconstruction);
}
