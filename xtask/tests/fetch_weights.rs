#![allow(clippy::unwrap_used)]
//! `cargo xtask fetch-weights` against a stand-in Hub on 127.0.0.1 (see `common`). Each
//! test has its own `HF_HOME` and its own server; nothing reaches beyond the machine.

mod common;

use std::sync::Arc;

use common::*;

fn hub_with(data: Arc<Vec<u8>>) -> LocalHub {
    LocalHub::start(vec![(REPO, FILE, HubFile::new(data))])
}

/// The snapshot entry the trainer reads, if the cache has one.
fn trainer_path(hf_home: &std::path::Path) -> Option<std::path::PathBuf> {
    let repo = repo_dir(hf_home);
    let commit = std::fs::read_to_string(repo.join("refs/main")).ok()?;
    let path = repo.join("snapshots").join(commit.trim()).join(FILE);
    path.is_file().then_some(path)
}

#[test]
fn fetches_into_the_cache_where_the_trainer_looks() {
    let data = good_file();
    let sha = sha256_hex(&data);
    let hub = hub_with(data.clone());
    let home = tempfile::tempdir().unwrap();

    // The built-in manifest (data/weights.toml), as a user runs it.
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("`--init vgg16`"), "{}", text(&out));

    let repo = repo_dir(home.path());
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let pointer = repo.join("snapshots").join(COMMIT).join(FILE);
    assert_eq!(
        trainer_path(home.path()).as_deref(),
        Some(pointer.as_path())
    );
    // hf-hub's layout: a relative symlink to the blob named by its SHA-256.
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(&pointer).unwrap(),
        std::path::Path::new("../../blobs").join(&sha)
    );
    assert_eq!(std::fs::read(&pointer).unwrap(), *data);
    assert_eq!(
        files_under(&repo),
        vec![
            repo.join("blobs").join(&sha),
            repo.join("refs/main"),
            pointer.clone()
        ],
        "nothing else (no staging, no .part, no lock) is left"
    );
    // Metadata (Range 0-0, not following the redirect), then the body from the CDN.
    let log = hub.requests();
    let resolve = format!("/{REPO}/resolve/main/{FILE}");
    assert!(
        log.iter().any(|r| r == &format!("GET {resolve} bytes=0-0")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|r| r == &format!("GET /cdn/{sha} bytes=0-")),
        "{log:?}"
    );

    // A second run checks the cached copy and asks the Hub nothing.
    let before = hub.requests().len();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("passes its checks"), "{}", text(&out));
    assert_eq!(hub.requests().len(), before);

    // So does an offline run.
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &[],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(hub.requests().len(), before);
}

#[test]
fn works_without_the_cdn_redirect_and_with_a_pinned_checksum() {
    let data = good_file();
    let hub = hub_with(data.clone());
    hub.set_redirect(false);
    let home = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        home.path(),
        FILE,
        Some(data.len()),
        Some(&sha256_hex(&data)),
    );
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &["--manifest", manifest.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(trainer_path(home.path()).unwrap()).unwrap(),
        *data
    );
    assert!(hub.requests().iter().all(|r| !r.contains("/cdn/")));
}

#[test]
fn a_checksum_mismatch_with_the_manifest_leaves_nothing_in_the_cache() {
    let data = good_file();
    let hub = hub_with(data);
    let home = tempfile::tempdir().unwrap();
    let manifest_dir = tempfile::tempdir().unwrap();
    let wrong = sha256_hex(b"some other file");
    let manifest = write_manifest(manifest_dir.path(), FILE, None, Some(&wrong));
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &["--manifest", manifest.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("checksum mismatch") && msg.contains(&wrong),
        "{msg}"
    );
    assert!(msg.contains("nothing of it is kept"), "{msg}");
    assert_eq!(files_under(home.path()), Vec::<std::path::PathBuf>::new());
    assert!(!repo_dir(home.path()).exists());
}

#[test]
fn a_file_that_does_not_match_the_hubs_own_checksum_is_rejected() {
    // The Hub announces one SHA-256 and serves other bytes (a corrupted transfer or cache).
    let data = good_file();
    let mut corrupt = (*data).clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let file = HubFile {
        data: Arc::new(corrupt),
        etag: sha256_hex(&data),
    };
    let hub = LocalHub::start(vec![(REPO, FILE, file)]);
    let home = tempfile::tempdir().unwrap();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the Hub announced"), "{}", text(&out));
    assert_eq!(files_under(home.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_file_without_the_vgg16_tensors_is_rejected() {
    let data = Arc::new(vgg16_bytes(|t| {
        t.retain(|(name, ..)| name != "features.14.weight")
    }));
    let hub = hub_with(data);
    let home = tempfile::tempdir().unwrap();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("missing `features.14.weight` [256, 256, 3, 3]"),
        "{msg}"
    );
    assert_eq!(files_under(home.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_missing_file_is_a_clear_404() {
    let hub = hub_with(good_file());
    let home = tempfile::tempdir().unwrap();
    let manifest = write_manifest(home.path(), "pytorch_model.bin", None, None);
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &["--manifest", manifest.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(
            "the Hub has no `pytorch_model.bin` in `timm/vgg16.tv_in1k` at revision `main`"
        ),
        "{msg}"
    );
    assert!(msg.contains("404"), "{msg}");
    assert_eq!(
        files_under(&home.path().join("hub")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_connection_cut_halfway_is_resumed() {
    let data = good_file();
    let hub = hub_with(data.clone());
    hub.cut_next(1, false);
    let home = tempfile::tempdir().unwrap();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(trainer_path(home.path()).unwrap()).unwrap(),
        *data
    );
    // The retry asked for the rest only.
    let half = data.len() / 2;
    let log = hub.requests();
    assert!(
        log.iter().any(|r| r.ends_with(&format!("bytes={half}-"))),
        "{log:?}"
    );
}

#[test]
fn a_connection_cut_every_time_fails_cleanly_and_the_next_run_resumes() {
    let data = good_file();
    let hub = hub_with(data.clone());
    hub.cut_next(usize::MAX, false);
    let home = tempfile::tempdir().unwrap();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("was cut 4 times in a row"), "{msg}");
    assert!(msg.contains("the next run resumes it"), "{msg}");
    // Only the staging area holds anything: no blob, snapshot or ref the trainer could take.
    let repo = repo_dir(home.path());
    assert!(trainer_path(home.path()).is_none());
    for path in files_under(&repo) {
        assert!(path.starts_with(repo.join(".osips-incoming")), "{path:?}");
    }
    assert!(!repo.join("refs").exists() && !repo.join("snapshots").exists());

    hub.cut_next(0, false);
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(trainer_path(home.path()).unwrap()).unwrap(),
        *data
    );
    assert!(!repo.join(".osips-incoming").exists());
}

#[test]
fn a_close_delimited_body_cut_short_is_not_taken_for_a_good_file() {
    // Without Content-Length the client cannot tell a cut from the end: hf-hub renames the
    // short `.part` into a blob, and the checks must throw it away.
    let hub = hub_with(good_file());
    hub.cut_next(1, true);
    let home = tempfile::tempdir().unwrap();
    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    assert_eq!(files_under(home.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn offline_without_a_copy_says_where_to_put_one() {
    let hub = hub_with(good_file());
    let home = tempfile::tempdir().unwrap();
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &[],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HF_HUB_OFFLINE is set"), "{stderr}");
    assert!(stderr.contains("OSIPS_VGG16_WEIGHTS"), "{stderr}");
    let by_hand = repo_dir(home.path()).join("snapshots/manual").join(FILE);
    assert!(stderr.contains(&by_hand.display().to_string()), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    assert!(
        hub.requests().is_empty(),
        "offline, yet: {:?}",
        hub.requests()
    );
}

#[test]
fn a_copy_put_in_the_cache_by_hand_is_accepted_offline() {
    let data = good_file();
    let home = tempfile::tempdir().unwrap();
    let repo = repo_dir(home.path());
    std::fs::create_dir_all(repo.join("snapshots/manual")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("snapshots/manual").join(FILE), &*data).unwrap();
    std::fs::write(repo.join("refs/main"), "manual").unwrap();
    let out = fetch(
        home.path(),
        "http://127.0.0.1:9",
        &[],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("`--init vgg16`"), "{}", text(&out));
}

#[test]
fn a_corrupt_cached_copy_is_deleted_and_fetched_again() {
    let data = good_file();
    let hub = hub_with(data.clone());
    let home = tempfile::tempdir().unwrap();
    assert!(fetch(home.path(), &hub.endpoint(), &[], &[])
        .status
        .success());
    let blob = repo_dir(home.path()).join("blobs").join(sha256_hex(&data));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&blob, bytes).unwrap();

    // Offline, the bad copy is deleted and not used.
    let out = fetch(
        home.path(),
        &hub.endpoint(),
        &[],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("fails its checks"), "{}", text(&out));
    assert!(trainer_path(home.path()).is_none());
    assert_eq!(files_under(home.path()), Vec::<std::path::PathBuf>::new());

    let out = fetch(home.path(), &hub.endpoint(), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(trainer_path(home.path()).unwrap()).unwrap(),
        *data
    );
}
