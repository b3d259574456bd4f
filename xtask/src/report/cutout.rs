//! The cut-out comparison: per image, model time and end-to-end time of rembg and of the
//! engine at 1 and N threads with the N-thread ratio; then load time, batch throughput, peak
//! RSS and one whole-process cut-out. Numbers are shown as the probes printed them.

use std::fmt::Write;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::cutout::CutoutResults;

/// A probe's value as written (`273.3`, `345`, a name), `-` when absent.
fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `2.44×`: how many times longer `ours` took than `theirs`; `-` when it cannot be computed.
fn ratio(ours: Option<&Value>, theirs: Option<&Value>) -> String {
    match (ours.and_then(Value::as_f64), theirs.and_then(Value::as_f64)) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

fn images(probe: &Value) -> anyhow::Result<&Vec<Value>> {
    probe.get("images").and_then(Value::as_array).context("a probe's JSON has no `images` list")
}

fn find<'a>(images: &'a [Value], name: &str, engine: &str) -> anyhow::Result<&'a Value> {
    images
        .iter()
        .find(|i| i.get("image").and_then(Value::as_str) == Some(name))
        .with_context(|| format!("{engine} has no result for {name}"))
}

pub fn render(r: &CutoutResults) -> anyhow::Result<String> {
    let n = r.threads;
    let mut md = String::new();
    let _ = writeln!(md, "## Cut-out engine vs rembg (u2netp) — {}", r.finished_at.date());
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "{} cores ({}), {} runs per image after a warm-up, medians. rembg {n} threads (onnxruntime intra-op), tract 1 and {n} threads (`multithread-mm`). Load average before/after: {} / {}.",
        r.cores, r.arch, r.runs, r.load_before, r.load_after
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| image | size | model ms rembg | tract 1T | tract {n}T | ratio | end-to-end ms rembg | tract 1T | tract {n}T | ratio |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let (t1, tn) = (images(&r.tract_1)?, images(&r.tract_n)?);
    let rembg = images(&r.rembg)?;
    if rembg.is_empty() {
        bail!("rembg measured no images");
    }
    for ri in rembg {
        let name = ri.get("image").and_then(Value::as_str).context("an image without a name")?;
        let (a, b) = (find(t1, name, "tract 1T")?, find(tn, name, "tract NT")?);
        let _ = writeln!(
            md,
            "| {name} | {}×{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            show(ri.get("width")),
            show(ri.get("height")),
            show(ri.get("model_ms")),
            show(a.get("model_ms")),
            show(b.get("model_ms")),
            ratio(b.get("model_ms"), ri.get("model_ms")),
            show(ri.get("e2e_ms")),
            show(a.get("e2e_ms")),
            show(b.get("e2e_ms")),
            ratio(b.get("e2e_ms"), ri.get("e2e_ms")),
        );
    }
    let row = |label: &str, key: &str| {
        format!(
            "| {label} | {} | {} | {} |",
            show(r.rembg.get(key)),
            show(r.tract_1.get(key)),
            show(r.tract_n.get(key))
        )
    };
    let _ = writeln!(md);
    let _ = writeln!(md, "| | rembg | tract 1T | tract {n}T |");
    let _ = writeln!(md, "|---|---|---|---|");
    let _ = writeln!(md, "{}", row("model load (cold start, ms)", "load_ms"));
    let _ = writeln!(md, "{}", row("batch throughput (images/s)", "batch_ips"));
    let _ = writeln!(md, "{}", row("peak RSS (MB)", "peak_rss_mb"));
    let _ = writeln!(md, "| one image, whole process (ms) | {} | | {} |", r.cold_rembg_ms, r.cold_tract_ms);
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Model time: the network alone on a prepared 1×3×320×320 input. End to end: encoded bytes in → decode → mask → transparent PNG bytes out (rembg: `remove()`, Pillow PNG; tract: `Engine::cut_out` + `transparent_png(Fast)`)."
    );
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::UtcTime;
    use serde_json::json;

    fn results() -> CutoutResults {
        let probe = |model: f64, e2e: f64, load: f64, ips: f64, rss: u64| {
            json!({"load_ms": load, "batch_ips": ips, "peak_rss_mb": rss, "images": [
                {"image": "astronaut.png", "width": 512, "height": 512, "model_ms": model, "e2e_ms": e2e}
            ]})
        };
        CutoutResults {
            finished_at: UtcTime(1_796_035_267),
            cores: 2,
            arch: "x86_64".into(),
            runs: 3,
            threads: 2,
            load_before: "0.14 0.20 0.30".into(),
            load_after: "1.40 0.60 0.40".into(),
            rembg: probe(254.9, 306.4, 62.9, 2.67, 757),
            tract_1: probe(1173.7, 1132.3, 244.2, 0.86, 335),
            tract_n: probe(665.1, 664.1, 229.7, 1.5, 367),
            cold_rembg_ms: 1794,
            cold_tract_ms: 1044,
        }
    }

    #[test]
    fn the_report_shows_the_probes_numbers_as_written_and_the_ratios() {
        let md = render(&results()).unwrap();
        let expected = "\
## Cut-out engine vs rembg (u2netp) — 2026-11-30

2 cores (x86_64), 3 runs per image after a warm-up, medians. rembg 2 threads (onnxruntime intra-op), tract 1 and 2 threads (`multithread-mm`). Load average before/after: 0.14 0.20 0.30 / 1.40 0.60 0.40.

| image | size | model ms rembg | tract 1T | tract 2T | ratio | end-to-end ms rembg | tract 1T | tract 2T | ratio |
|---|---|---|---|---|---|---|---|---|---|
| astronaut.png | 512×512 | 254.9 | 1173.7 | 665.1 | 2.61× | 306.4 | 1132.3 | 664.1 | 2.17× |

| | rembg | tract 1T | tract 2T |
|---|---|---|---|
| model load (cold start, ms) | 62.9 | 244.2 | 229.7 |
| batch throughput (images/s) | 2.67 | 0.86 | 1.5 |
| peak RSS (MB) | 757 | 335 | 367 |
| one image, whole process (ms) | 1794 | | 1044 |
";
        assert!(md.starts_with(expected), "{md}");
    }

    #[test]
    fn an_image_one_engine_did_not_measure_is_an_error() {
        let mut r = results();
        r.tract_n = json!({"images": []});
        assert!(render(&r).unwrap_err().to_string().contains("astronaut.png"));
    }

    #[test]
    fn a_zero_reference_time_has_no_ratio() {
        assert_eq!(ratio(Some(&json!(3.0)), Some(&json!(0.0))), "-");
        assert_eq!(ratio(Some(&json!(3.0)), Some(&json!(1.5))), "2.00×");
    }
}
