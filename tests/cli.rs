//! End to end on the built `osips` binary: a checkpoint trained for a few steps inside the
//! test, then every inference subcommand and its errors.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn osips() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osips"))
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn faces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../osips-data/tests/fixtures/faces")
}

fn face(person: &str) -> PathBuf {
    let dir = faces().join(person);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.remove(0)
}

/// One run directory, trained for 2 steps once for all the tests of this binary.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &RUN.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let out = osips()
            .args([
                "train",
                "--steps",
                "2",
                "--no-eval",
                "--quiet",
                "--batch-size",
                "4",
            ])
            .args(["--data", "synthetic:20", "--name", "cli"])
            .arg("--runs-dir")
            .arg(root.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = stdout
            .lines()
            .find_map(|l| l.strip_prefix("run directory:"))
            .map(|d| PathBuf::from(d.trim()))
            .unwrap();
        (root, dir)
    })
    .1
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap();
    (img.width(), img.height())
}

/// A failure: non-zero exit, one line on stderr that contains `needle`, no panic.
fn assert_clear_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {}", text(out));
    assert!(lines[0].starts_with("error: "), "{}", text(out));
    assert!(
        lines[0].contains(needle),
        "wanted `{needle}`: {}",
        text(out)
    );
    assert!(!stderr.contains("panicked"), "{}", text(out));
}

#[test]
fn swap_one_pair_and_a_grid_of_folders() {
    let out_dir = tempfile::tempdir().unwrap();
    let one = out_dir.path().join("one.png");
    let out = osips()
        .arg("swap")
        .arg("-c")
        .arg(run_dir())
        .arg(face("John_Salley"))
        .arg(face("John_Simm"))
        .arg("-o")
        .arg(&one)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(png_size(&one), (64, 64));

    let grid = out_dir.path().join("grid.png");
    let out = osips()
        .arg("swap")
        .arg("-c")
        .arg(run_dir())
        .arg(faces().join("John_Savage"))
        .arg(faces().join("John_Simm"))
        .arg("-o")
        .arg(&grid)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // 3 identities × 3 attribute images, plus the inputs along the edges.
    assert_eq!(png_size(&grid), (4 * 64, 4 * 64));

    let each = out_dir.path().join("pairs");
    let out = osips()
        .arg("swap")
        .arg("-c")
        .arg(run_dir())
        .arg(faces().join("John_Savage"))
        .arg(face("John_Simm"))
        .arg("--each")
        .arg(&each)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut written: Vec<String> = std::fs::read_dir(&each)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written[0].ends_with(&format!(
        "__{}.png",
        face("John_Simm").file_stem().unwrap().to_string_lossy()
    )));
    assert_eq!(png_size(&each.join(&written[0])), (64, 64));
}

#[test]
fn sample_writes_the_input_and_the_samples() {
    let out_dir = tempfile::tempdir().unwrap();
    let strip = out_dir.path().join("samples.png");
    let checkpoint = osips_checkpoint();
    let out = osips()
        .arg("sample")
        .arg("-c")
        .arg(&checkpoint)
        .arg(face("John_Salley"))
        .args(["-n", "5", "--seed", "3", "-o"])
        .arg(&strip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(png_size(&strip), (6 * 64, 64));
}

/// The newest checkpoint directory of the shared run.
fn osips_checkpoint() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run_dir().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("state.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop().unwrap()
}

#[test]
fn bad_inputs_are_one_clear_line_and_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out_png = tmp.path().join("out.png");
    let swap = |identity: &Path, attribute: &Path, checkpoint: &Path, output: &Path| {
        osips()
            .arg("swap")
            .arg("-c")
            .arg(checkpoint)
            .arg(identity)
            .arg(attribute)
            .arg("-o")
            .arg(output)
            .output()
            .unwrap()
    };
    let good = face("John_Simm");

    let missing = tmp.path().join("nobody.jpg");
    assert_clear_error(&swap(&missing, &good, run_dir(), &out_png), "no such file");

    let garbage = tmp.path().join("garbage.jpg");
    std::fs::write(&garbage, b"this is not a jpeg").unwrap();
    assert_clear_error(&swap(&garbage, &good, run_dir(), &out_png), "garbage.jpg");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_clear_error(&swap(&empty, &good, run_dir(), &out_png), "no image files");

    // A checkpoint of another format version.
    let other = tmp.path().join("other-version");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(osips_checkpoint()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
    }
    let state = std::fs::read_to_string(other.join("state.json")).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
    state["format_version"] = serde_json::json!(osips_models::FORMAT_VERSION + 1);
    std::fs::write(other.join("state.json"), state.to_string()).unwrap();
    assert_clear_error(&swap(&good, &good, &other, &out_png), "format version");

    let not_a_checkpoint = tmp.path().join("nothing-here");
    assert_clear_error(
        &swap(&good, &good, &not_a_checkpoint, &out_png),
        "no such checkpoint",
    );

    // An output that cannot be written.
    let unwritable = tmp.path().join("no-such-folder").join("out.png");
    assert_clear_error(&swap(&good, &good, run_dir(), &unwritable), "cannot write");

    assert!(!out_png.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".png"))
        .collect();
    assert!(leftovers.is_empty(), "partial outputs left: {leftovers:?}");
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn morph_writes_a_strip_and_a_gif() {
    let tmp = tempfile::tempdir().unwrap();
    let strip = tmp.path().join("morph.png");
    run_ok(
        osips()
            .arg("morph")
            .arg("-c")
            .arg(run_dir())
            .arg(face("John_Salley"))
            .arg(face("John_Simm"))
            .arg(face("John_Savage"))
            .args(["--steps", "5", "-o"])
            .arg(&strip),
    );
    assert_eq!(png_size(&strip), (5 * 64, 64));
    let gif = std::fs::read(tmp.path().join("morph.gif")).unwrap();
    assert!(gif.starts_with(b"GIF89a"));
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(gif)).unwrap();
    use image::AnimationDecoder;
    // There and back: 5 + 3 frames.
    assert_eq!(frames.into_frames().count(), 8);
}

#[test]
fn frontalize_detect_eval_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("frontal.png");
    run_ok(
        osips()
            .arg("frontalize")
            .arg("-c")
            .arg(run_dir())
            .arg(faces().join("John_Savage"))
            .arg("--frontal")
            .arg(face("John_Simm"))
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(png_size(&out), (3 * 64, 2 * 64));

    let report = run_ok(
        osips()
            .arg("detect")
            .arg("-c")
            .arg(run_dir())
            .arg(faces().join("John_Simm"))
            .arg("--calibrate")
            .arg(faces().join("John_Savage")),
    );
    assert!(report.contains("threshold"), "{report}");
    assert!(
        report.contains("of 3 images above the threshold"),
        "{report}"
    );
    let fixed = run_ok(
        osips()
            .arg("detect")
            .arg("-c")
            .arg(run_dir())
            .arg(face("John_Simm"))
            .arg("--threshold=-1"),
    );
    assert!(
        fixed.contains("SUSPECT"),
        "every distance is above -1: {fixed}"
    );

    let json = tmp.path().join("eval.json");
    let eval = run_ok(
        osips()
            .arg("eval")
            .arg("-c")
            .arg(run_dir())
            .args(["--identities", "11", "--json"])
            .arg(&json),
    );
    assert!(eval.contains("swap PSNR"), "{eval}");
    let numbers: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(numbers["n_identities"], 11);
    assert_eq!(numbers["step"], 2);

    let info = run_ok(osips().args(["inspect", "checkpoint"]).arg(run_dir()));
    assert!(info.contains("preset:         tiny"), "{info}");
    assert!(info.contains("step:           2"), "{info}");
    assert!(info.contains("identity"), "{info}");
    let bad = osips()
        .args(["inspect", "checkpoint"])
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_clear_error(&bad, "no such checkpoint");
}

/// `osips inspect data` as (images, identities).
fn counts(source: &str) -> (usize, usize) {
    let info = run_ok(osips().args(["inspect", "data", source]));
    let field = |name: &str| -> usize {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no `{name}` in {info}"))
    };
    (field("images:"), field("identities:"))
}

#[test]
fn data_convert_round_trips_through_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = format!("folder:{}", faces().display());
    let expected = counts(&folder);
    assert_eq!(expected, (9, 3));
    let tsv = tmp.path().join("faces.tsv");
    let pack = tmp.path().join("pack");
    let back = tmp.path().join("back");
    run_ok(
        osips()
            .args(["data", "convert", &folder])
            .arg(format!("tsv:{}", tsv.display())),
    );
    assert_eq!(counts(&format!("tsv:{}", tsv.display())), expected);
    run_ok(
        osips()
            .args(["data", "convert"])
            .arg(format!("tsv:{}", tsv.display()))
            .arg(format!("recordio:{}", pack.display())),
    );
    let rec = format!("recordio:{}", pack.join("train.rec").display());
    assert_eq!(counts(&rec), expected);
    run_ok(
        osips()
            .args(["data", "convert", &rec])
            .arg(format!("folder:{}", back.display())),
    );
    assert_eq!(counts(&format!("folder:{}", back.display())), expected);
    // insightface packs carry numeric labels only, so the names come back as numbers; the
    // TSV keeps them as MIDs.
    let mut names: Vec<String> = std::fs::read_dir(&back)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["0000000", "0000001", "0000002"]);
    let tsv_text = std::fs::read_to_string(&tsv).unwrap();
    assert!(tsv_text.starts_with("John_Salley\t"), "{}", &tsv_text[..40]);

    let again = osips()
        .args(["data", "convert", &folder])
        .arg(format!("folder:{}", back.display()))
        .output()
        .unwrap();
    assert_clear_error(&again, "already exists");
    let unknown = osips()
        .args(["data", "convert", &folder])
        .arg(format!("zip:{}", tmp.path().join("x").display()))
        .output()
        .unwrap();
    assert_clear_error(&unknown, "unknown output kind");
    assert!(!tmp.path().join("x").exists());
    assert!(!tmp.path().join(".x.converting").exists());
}
