//! Synthetic faces: identities tell apart across attributes, attributes change the image.

use osips_data::synthetic::{
    eval_identity_seed, render, train_identity_seed, Attributes, Identity, EVAL_IDENTITY_SEEDS,
    TRAIN_IDENTITY_SEEDS,
};

use crate::testutil::{mean_abs_diff, slow_tests};

#[test]
fn renders_are_deterministic_at_any_size() {
    for size in [8, 17, 64, 100] {
        let id = Identity::from_seed(eval_identity_seed(1));
        let at = Attributes::from_seed(5);
        let a = render(&id, &at, size);
        assert_eq!(a.dimensions(), (size, size));
        assert_eq!(a, render(&id, &at, size));
    }
}

#[test]
fn every_attribute_changes_the_image_and_frontal_is_neutral() {
    let id = Identity::from_seed(train_identity_seed(3));
    let base = Attributes::frontal();
    let frontal = render(&id, &base, 64);
    let deg = std::f32::consts::PI / 180.0;
    type Edit = Box<dyn Fn(&mut Attributes)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("yaw", Box::new(move |a| a.yaw = 40.0 * deg)),
        ("pitch", Box::new(move |a| a.pitch = 15.0 * deg)),
        ("roll", Box::new(move |a| a.roll = 10.0 * deg)),
        ("smile", Box::new(|a| a.smile = 1.0)),
        ("mouth", Box::new(|a| a.mouth_open = 1.0)),
        ("eyes", Box::new(|a| a.eyes_closed = 1.0)),
        ("brows", Box::new(|a| a.brows_raised = 1.0)),
        ("light", Box::new(|a| a.light_dir = [-1.0, 0.0, 0.2])),
        (
            "background",
            Box::new(|a| a.background.color_a = [0.1, 0.5, 0.2]),
        ),
        (
            "glasses",
            Box::new(|a| {
                a.glasses = Attributes::from_seed(0)
                    .glasses
                    .or_else(|| (0..100).find_map(|s| Attributes::from_seed(s).glasses))
            }),
        ),
        ("scale", Box::new(|a| a.scale = 1.1)),
        ("noise", Box::new(|a| a.noise = 0.05)),
        ("blur", Box::new(|a| a.blur = 1.0)),
    ];
    for (name, edit) in edits {
        let mut at = base.clone();
        edit(&mut at);
        let d = mean_abs_diff(&frontal, &render(&id, &at, 64));
        assert!(d > 0.3, "{name} barely changes the image ({d:.2})");
    }
}

#[test]
fn identities_differ_more_than_mild_attribute_changes() {
    // Under the same neutral attributes, two people differ clearly; one person under a
    // slight expression change differs less.
    let at = Attributes::frontal();
    let mut mild = at.clone();
    mild.smile = 0.3;
    mild.gaze = [0.3, 0.0];
    let mut between = Vec::new();
    let mut within = Vec::new();
    for k in 0..12 {
        let a = Identity::from_seed(eval_identity_seed(k));
        let b = Identity::from_seed(eval_identity_seed(k + 100));
        let ia = render(&a, &at, 48);
        between.push(mean_abs_diff(&ia, &render(&b, &at, 48)));
        within.push(mean_abs_diff(&ia, &render(&a, &mild, 48)));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&between) > 3.0 * mean(&within),
        "between {between:?} within {within:?}"
    );
    assert!(between.iter().all(|&d| d > 2.0), "{between:?}");
}

#[test]
fn train_and_eval_seed_ranges_are_disjoint() {
    const { assert!(TRAIN_IDENTITY_SEEDS.end <= EVAL_IDENTITY_SEEDS.start) };
    assert!(!TRAIN_IDENTITY_SEEDS.contains(&eval_identity_seed(0)));
    assert_ne!(
        Identity::from_seed(train_identity_seed(0)),
        Identity::from_seed(eval_identity_seed(0))
    );
}

#[test]
fn random_attributes_cover_the_documented_ranges() {
    let deg = std::f32::consts::PI / 180.0;
    let all: Vec<Attributes> = (0..2000).map(Attributes::from_seed).collect();
    assert!(all
        .iter()
        .all(|a| a.yaw.abs() <= 60.0 * deg + 1e-4 && a.pitch.abs() <= 18.0 * deg + 1e-4));
    assert!(all.iter().any(|a| a.yaw.abs() > 45.0 * deg));
    let glasses = all.iter().filter(|a| a.glasses.is_some()).count();
    assert!((300..500).contains(&glasses), "{glasses}");
    assert!(all.iter().any(|a| a.eyes_closed > 0.6) && all.iter().any(|a| a.mouth_open > 0.5));
}

#[test]
fn render_speed_at_64_px() {
    // A loose bound in debug builds; the bench reports the real figure.
    let n = if slow_tests() { 200 } else { 20 };
    let ids: Vec<Identity> = (0..n)
        .map(|k| Identity::from_seed(train_identity_seed(k as u32)))
        .collect();
    let start = std::time::Instant::now();
    for (k, id) in ids.iter().enumerate() {
        render(id, &Attributes::from_seed(k as u64), 64);
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    assert!(per < 0.05, "{:.1} ms per 64 px face", per * 1e3);
}
