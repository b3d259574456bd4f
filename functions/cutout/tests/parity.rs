//! Parity with rembg, proven on real photos.
//!
//! Runs rembg 2.0.86 itself (onnxruntime, `new_session("u2netp")`, `only_mask=True`,
//! `U2NET_HOME` = the models directory) and this engine on scikit-image's sample photos,
//! and requires for every photo:
//!
//! * mean |alpha difference| ≤ 1.0 (0–255 scale), and
//! * IoU of the foregrounds (alpha > 127) ≥ 0.99.
//!
//! Each JPEG is compared twice, under the same rules: as the raw file (our libjpeg decode
//! against Pillow's libjpeg-turbo), and with its pixels decoded once by Pillow and stored
//! losslessly (the rest of the pipeline on its own), so a failure says which half drifted.
//!
//! It also checks, in every case, that decoding plus our Pillow-LANCZOS port hand the model
//! the very same 320×320 image as Pillow does, byte for byte, and that `post_process_mask`
//! agrees with rembg's.
//!
//! Needs `scripts/rembg-venv.sh` and `scripts/fetch-model.sh` to have run, so it only runs
//! when `CUTOUT_PARITY=1` (as `make test` sets); otherwise it prints why it skipped.
//! Overrides: `REMBG_PYTHON` (interpreter), `MODELS_DIR` (where u2netp.onnx is).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cutout::{resize_lanczos, CutoutOptions, Engine, EngineOptions, ModelName, ModelSpec};

const PHOTOS: &[&str] = &[
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "coins",
    "moon",
    "retina",
    "hubble_deep_field",
    "motorcycle_left",
    "ihc",
    "logo",
    "horse",
    "cell",
    "page",
    "text",
];

const MAX_MEAN_ABS_DIFF: f64 = 1.0;
const MIN_IOU: f64 = 0.99;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Compared {
    mean_abs: f64,
    max_abs: u8,
    iou: f64,
    foreground: usize,
    differing_fg: usize,
}

fn compare(ours: &[u8], theirs: &[u8]) -> Compared {
    assert_eq!(ours.len(), theirs.len(), "mask sizes differ");
    let mut sum = 0u64;
    let mut max_abs = 0u8;
    let (mut inter, mut union, mut fg, mut differing) = (0usize, 0usize, 0usize, 0usize);
    for (&a, &b) in ours.iter().zip(theirs) {
        let d = a.abs_diff(b);
        sum += u64::from(d);
        max_abs = max_abs.max(d);
        let (fa, fb) = (a > 127, b > 127);
        inter += usize::from(fa && fb);
        union += usize::from(fa || fb);
        fg += usize::from(fb);
        differing += usize::from(fa != fb);
    }
    Compared {
        mean_abs: sum as f64 / ours.len().max(1) as f64,
        max_abs,
        iou: if union == 0 { 1.0 } else { inter as f64 / union as f64 },
        foreground: fg,
        differing_fg: differing,
    }
}

fn load_gray(path: &Path) -> image::GrayImage {
    image::open(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())).to_luma8()
}

#[test]
fn masks_match_rembg_on_real_photos() {
    if std::env::var("CUTOUT_PARITY").as_deref() != Ok("1") {
        // Written to the real stderr (not eprintln!, which the test harness captures) so
        // the skip is visible in every `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED parity with rembg: set CUTOUT_PARITY=1 after running \
             scripts/rembg-venv.sh and scripts/fetch-model.sh (make test does this)"
        );
        return;
    }
    let root = repo_root();
    let python =
        std::env::var_os("REMBG_PYTHON").map(PathBuf::from).unwrap_or_else(|| root.join(".venv-rembg/bin/python"));
    assert!(python.exists(), "{} missing: run scripts/rembg-venv.sh", python.display());
    let models = std::env::var_os("MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("models"));
    let model_file = models.join("u2netp.onnx");
    assert!(model_file.is_file(), "{} missing: run scripts/fetch-model.sh", model_file.display());

    let out = std::env::temp_dir().join(format!("cutout-parity-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rembg_masks.py");
    let run = Command::new(&python).arg(&script).arg(&out).arg(&models).args(PHOTOS).output().expect("running rembg");
    assert!(run.status.success(), "rembg failed: {}", String::from_utf8_lossy(&run.stderr));
    let manifest = String::from_utf8_lossy(&run.stdout).into_owned();

    let engine =
        Engine::load_with(&ModelSpec::Path(model_file.clone()), EngineOptions::default()).expect("loading u2netp");
    assert_eq!(engine.preprocess(), ModelName::U2netp.preprocess());

    println!(
        "\n{:<28} {:>9} | {:>8} {:>4} {:>8} {:>8} {:>6} | {:>7} | {:>8}",
        "case", "size", "mean|Δ|", "max", "IoU", "fg px", "Δfg px", "in Δmax", "pp IoU"
    );
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in manifest.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [label, src, base, _secs] = cols[..] else {
            continue;
        };
        cases += 1;
        let base = PathBuf::from(base);
        let with_ext = |ext: &str| PathBuf::from(format!("{}.{ext}", base.display()));
        let bytes = std::fs::read(src).expect("reading photo");

        let cut = engine.cut_out(&bytes, &CutoutOptions::default()).unwrap_or_else(|e| panic!("{label}: {e}"));
        let theirs = load_gray(&with_ext("mask.png"));
        assert_eq!((cut.width, cut.height), theirs.dimensions(), "{label}: size differs");
        let c = compare(cut.mask.as_raw(), theirs.as_raw());

        // The model's input: our resampler against Pillow's, byte for byte.
        let img = cutout::decode_image(&bytes, &Default::default()).expect("decode");
        let rgb = img.to_rgb8();
        let ours_in =
            resize_lanczos(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize, 3, 320, 320).expect("resize");
        let pil_in = image::open(with_ext("in.png")).expect("pillow input").to_rgb8();
        let in_max = ours_in.iter().zip(pil_in.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);

        // post_process_mask against rembg's.
        let pp_ours = engine
            .cut_out(&bytes, &CutoutOptions { post_process_mask: true, ..Default::default() })
            .expect("post-processed cut-out");
        let pp = compare(pp_ours.mask.as_raw(), load_gray(&with_ext("pp.png")).as_raw());

        println!(
            "{:<28} {:>9} | {:>8.4} {:>4} {:>8.5} {:>8} {:>6} | {:>7} | {:>8.5}",
            label,
            format!("{}x{}", cut.width, cut.height),
            c.mean_abs,
            c.max_abs,
            c.iou,
            c.foreground,
            c.differing_fg,
            in_max,
            pp.iou
        );
        if c.mean_abs > MAX_MEAN_ABS_DIFF {
            failures.push(format!("{label}: mean |Δ| {:.4} > {MAX_MEAN_ABS_DIFF}", c.mean_abs));
        }
        if c.iou < MIN_IOU {
            failures.push(format!("{label}: IoU {:.5} < {MIN_IOU}", c.iou));
        }
        if pp.iou < MIN_IOU {
            failures.push(format!("{label}: post-processed IoU {:.5} < {MIN_IOU}", pp.iou));
        }
        if in_max != 0 {
            failures.push(format!("{label}: model input differs from Pillow's by up to {in_max}"));
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(cases >= PHOTOS.len(), "rembg processed {cases} cases for {} photos", PHOTOS.len());
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}
