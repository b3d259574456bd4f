//! Benchmark driver for `scripts/bench-cutout.sh`: measures this engine the same way
//! `tests/rembg_bench.py` measures rembg, and prints one JSON object.
//!
//! ```text
//! cargo run --release --example bench -- --model models/u2netp.onnx --runs 5 --threads 2 IMG...
//! ```
//!
//! * `load_ms`: parse + optimise the model (cold start, file already in the page cache);
//! * per image, medians over `--runs` after one warm-up: `model_ms` (the model run alone on
//!   a prepared input), `e2e_ms` (bytes in → decode → mask → transparent PNG bytes out);
//! * `batch_ips`: images per second over one pass of all images;
//! * `peak_rss_mb`: the process's high-water mark (VmHWM).

use std::time::Instant;

use cutout::{CutoutOptions, Engine, EngineOptions, ModelSpec, PngCompression};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut runs, mut threads, mut compression) =
        ("u2netp".to_string(), 5usize, 1usize, PngCompression::Fast);
    let mut images = Vec::new();
    let mut resize_as_matmul = true;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next().ok_or("--model needs a value")?,
            "--runs" => runs = args.next().ok_or("--runs needs a value")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--no-rewrite" => resize_as_matmul = false,
            "--compression" => {
                compression = match args.next().as_deref() {
                    Some("fast") => PngCompression::Fast,
                    Some("balanced") => PngCompression::Balanced,
                    Some("high") => PngCompression::High,
                    _ => return Err("--compression fast|balanced|high".into()),
                }
            }
            _ => images.push(a),
        }
    }
    cutout::init_threads(threads);
    let spec: ModelSpec = model.parse()?;
    let t = Instant::now();
    let engine = Engine::load_with(&spec, EngineOptions { threads, resize_as_matmul })?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let opts = CutoutOptions::default();
    let mut rows = Vec::new();
    let inputs: Vec<(String, Vec<u8>)> =
        images.iter().map(|p| Ok((p.clone(), std::fs::read(p)?))).collect::<Result<_, std::io::Error>>()?;
    for (path, bytes) in &inputs {
        let img = cutout::decode_image(bytes, &opts.limits)?;
        let tensor = engine.input_tensor(&img.to_rgb8())?;
        engine.run_model(tensor.clone())?; // warm-up
        let model_ms = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let _ = engine.run_model(tensor.clone());
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        let e2e = |bytes: &[u8]| -> Result<f64, cutout::CutoutError> {
            let t = Instant::now();
            let cut = engine.cut_out(bytes, &opts)?;
            let png = cut.transparent_png(compression)?;
            std::hint::black_box(png);
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        e2e(bytes)?;
        let e2e_ms = median((0..runs).map(|_| e2e(bytes).unwrap_or(f64::NAN)).collect());
        rows.push(format!(
            "{{\"image\":\"{}\",\"width\":{},\"height\":{},\"model_ms\":{model_ms:.1},\"e2e_ms\":{e2e_ms:.1}}}",
            std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            img.width(),
            img.height()
        ));
    }
    let t = Instant::now();
    for (_, bytes) in &inputs {
        let cut = engine.cut_out(bytes, &opts)?;
        std::hint::black_box(cut.transparent_png(compression)?);
    }
    let batch_ips = inputs.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"tract\",\"threads\":{threads},\"resize_as_matmul\":{resize_as_matmul},\"load_ms\":{load_ms:.1},\"batch_ips\":{batch_ips:.2},\"peak_rss_mb\":{:.0},\"images\":[{}]}}",
        peak_rss_mb(),
        rows.join(",")
    );
    Ok(())
}
