//! Pair sampling: determinism, exact resume, identity balance, unlabeled images.

use std::sync::Arc;

use osips_data::synthetic::{render, SyntheticSource};
use osips_data::{
    draw_face, image_to_chw, DataConfig, Dataset, DrawKey, FaceSource, Loader, PairBatch, Part,
    SamplerState, SourceSpec,
};

use crate::testutil::{self, photos};

fn casia_dataset(dir: &std::path::Path, batch: usize) -> (Arc<Dataset>, DataConfig) {
    testutil::write_casia_tree(dir, &photos());
    let cfg = testutil::config(SourceSpec::Folder { path: dir.into() }, 32, batch);
    (Arc::new(Dataset::open(&cfg).unwrap()), cfg)
}

fn take(loader: &mut Loader, n: usize) -> Vec<PairBatch> {
    (0..n).map(|_| loader.next_batch().unwrap().0).collect()
}

#[test]
fn batches_do_not_depend_on_threads_or_prefetch_depth() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, cfg) = casia_dataset(dir.path(), 5);
    let mut sync_cfg = cfg.clone();
    sync_cfg.prefetch = 0;
    let mut deep_cfg = cfg.clone();
    deep_cfg.prefetch = 4;
    let a = take(
        &mut Loader::with_threads(ds.clone(), &sync_cfg, SamplerState::start(9), 1).unwrap(),
        4,
    );
    let b = take(
        &mut Loader::with_threads(ds.clone(), &deep_cfg, SamplerState::start(9), 2).unwrap(),
        4,
    );
    assert_eq!(a, b);
    let c = take(
        &mut Loader::with_threads(ds, &cfg, SamplerState::start(10), 2).unwrap(),
        1,
    );
    assert_ne!(
        a[0].transformation.source.data, c[0].transformation.source.data,
        "the seed matters"
    );
}

#[test]
fn resume_from_state_gives_exactly_the_following_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, mut cfg) = casia_dataset(dir.path(), 4);
    cfg.prefetch = 3;
    let mut full = Loader::new(ds.clone(), &cfg, SamplerState::start(cfg.seed)).unwrap();
    let all = take(&mut full, 8);
    let mut first = Loader::new(ds.clone(), &cfg, SamplerState::start(cfg.seed)).unwrap();
    take(&mut first, 5);
    // Give the prefetcher time to run ahead: the state is still the consumer's position.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let state = first.state();
    assert_eq!(
        state,
        SamplerState {
            seed: cfg.seed,
            next_batch: 5
        }
    );
    drop(first);
    let json = serde_json::to_string(&state).unwrap();
    let restored: SamplerState = serde_json::from_str(&json).unwrap();
    let mut resumed = Loader::new(ds, &cfg, restored).unwrap();
    let rest = take(&mut resumed, 3);
    assert_eq!(rest, all[5..8].to_vec());
    assert_eq!(rest[0].index, 5);
    assert!(resumed.total_wait() > std::time::Duration::ZERO);
}

#[test]
fn processes_have_the_paper_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, cfg) = casia_dataset(dir.path(), 6);
    let mut loader = Loader::new(ds.clone(), &cfg, SamplerState::start(1)).unwrap();
    for _ in 0..5 {
        let (b, _) = loader.next_batch().unwrap();
        let r = &b.reconstruction;
        assert_eq!(r.source.shape(), [6, 3, 32, 32]);
        assert_eq!(r.source, r.attribute);
        assert!(r.same_image.iter().all(|&s| s));
        let t = &b.transformation;
        assert!(t.same_image.iter().all(|&s| !s));
        assert_eq!(t.attribute.data.len(), 6 * 3 * 32 * 32);
        for i in 0..6 {
            let (s, a) = (t.source_refs[i], t.attribute_refs[i]);
            assert_ne!(s.label, a.label, "x_a must be of another identity");
            assert_eq!(t.source_labels[i], s.label);
            assert!(s.label.unwrap() < ds.n_identities() as u32);
            assert_eq!(ds.class_of(s.index), s.label);
        }
        assert!(r.source_labels.iter().all(|l| l.is_some()));
    }
}

#[test]
fn identities_are_drawn_uniformly_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    // Identity "big" has 7 images, "small1"/"small2" one each.
    for (k, p) in photos.iter().take(7).enumerate() {
        std::fs::create_dir_all(dir.path().join("big")).unwrap();
        std::fs::write(dir.path().join("big").join(format!("{k}.jpg")), &p.jpeg).unwrap();
    }
    for (name, p) in [("small1", &photos[7]), ("small2", &photos[8])] {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("0.jpg"), &p.jpeg).unwrap();
    }
    let cfg = testutil::config(
        SourceSpec::Folder {
            path: dir.path().into(),
        },
        32,
        1,
    );
    let ds = Dataset::open(&cfg).unwrap();
    let mut counts = [0usize; 3];
    let n = 6000;
    for slot in 0..n {
        let key = DrawKey {
            seed: 3,
            batch: 0,
            role: 1,
            slot,
            attempt: 0,
        };
        let f = draw_face(&ds, key, None, false);
        counts[f.label.unwrap() as usize] += 1;
    }
    for c in counts {
        assert!((1800..2200).contains(&c), "{counts:?}");
    }
}

#[test]
fn unlabeled_images_join_as_source_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    testutil::write_casia_tree(&dir.path().join("labeled"), &photos);
    let unl = dir.path().join("unlabeled");
    std::fs::create_dir_all(unl.join("nested/deeper")).unwrap();
    for (k, p) in photos.iter().enumerate() {
        let sub = if k % 2 == 0 {
            unl.join("nested/deeper")
        } else {
            unl.clone()
        };
        std::fs::write(sub.join(format!("u{k}.jpg")), &p.jpeg).unwrap();
    }
    let mut cfg = testutil::config(
        SourceSpec::Folder {
            path: dir.path().join("labeled"),
        },
        32,
        16,
    );
    cfg.unlabeled = Some(unl);
    let ds = Arc::new(Dataset::open(&cfg).unwrap());
    assert_eq!(ds.part_len(Part::Unlabeled), photos.len());
    assert_eq!(ds.len(), 2 * photos.len());
    let mut loader = Loader::new(ds.clone(), &cfg, SamplerState::start(2)).unwrap();
    let (mut unl_source, mut unl_attr) = (0, 0);
    for _ in 0..4 {
        let (b, _) = loader.next_batch().unwrap();
        for p in [&b.reconstruction, &b.transformation] {
            for (i, r) in p.source_refs.iter().enumerate() {
                assert_eq!(p.source_labels[i], r.label);
                if r.part == Part::Unlabeled {
                    assert_eq!(r.label, None);
                    unl_source += 1;
                }
            }
        }
        for (s, a) in b
            .transformation
            .source_refs
            .iter()
            .zip(&b.transformation.attribute_refs)
        {
            if a.part == Part::Unlabeled {
                unl_attr += 1;
                assert!(!(s.part == Part::Unlabeled && s.index == a.index));
            }
            if let (Some(x), Some(y)) = (s.label, a.label) {
                assert_ne!(x, y);
            }
        }
    }
    assert!(unl_source > 10 && unl_attr > 5, "{unl_source} {unl_attr}");
}

#[test]
fn synthetic_batches_are_the_renderers_ground_truth() {
    let cfg = DataConfig {
        source: SourceSpec::parse("synthetic:50").unwrap(),
        unlabeled: None,
        image_size: 32,
        batch_size: 4,
        flip: false,
        prefetch: 1,
        seed: 11,
    };
    let ds = Arc::new(Dataset::open(&cfg).unwrap());
    assert_eq!(ds.n_identities(), 50);
    let mut loader = Loader::new(ds.clone(), &cfg, SamplerState::start(cfg.seed)).unwrap();
    let (b, _) = loader.next_batch().unwrap();
    let synth = SyntheticSource::new(50, 32).unwrap();
    for (i, r) in b.transformation.attribute_refs.iter().enumerate() {
        let (id, at) = synth.parameters(r.index).unwrap();
        assert_eq!(
            image_to_chw(&render(&id, &at, 32)),
            b.transformation.attribute.image(i)
        );
        assert_eq!(synth.identity(r.index), r.label);
    }
}
