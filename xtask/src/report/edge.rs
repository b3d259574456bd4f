//! edge.md: hit / miss / direct throughput (the run with the median req/s), the miss overhead
//! at low load (median p50s) and the Artillery phases.

use std::fmt::Write;

use super::api::all_runs;
use super::ms;
use crate::bench::edge::{EdgePhases, EdgeThroughput};
use crate::load::phases::{PhaseResult, THINK_SECONDS};
use crate::stats::median_by;
use crate::wrk::WrkResult;

/// The median p50 of low-load runs, microseconds.
fn median_p50(runs: &[WrkResult]) -> u64 {
    median_by(runs, |w| w.p50_us).map_or(0, |w| w.p50_us)
}

pub fn render(t: &EdgeThroughput, p: &EdgePhases) -> String {
    let mut md = String::new();
    let m = &t.machine;
    let _ = writeln!(md, "## Edge benchmark ({})", p.finished_at.iso8601());
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- machine: `nproc` = {}, {}; wrk, the edge and the stub origin share it; load average before: {}",
        m.cores,
        m.cpu.as_deref().unwrap_or("unknown CPU"),
        t.load_before
    );
    let _ = writeln!(md, "- git rev: {}; {}; release build", m.git_rev, m.rustc);
    let _ = writeln!(
        md,
        "- load: wrk `-t{} -c{} -d{}`, {} runs per scenario after a {} warm-up; the run with the median req/s is shown; low-load latency `-t1 -c1 -d{}`, median of {} p50s",
        t.threads, t.connections, t.duration, t.runs, t.warmup, t.latency_duration, t.runs
    );
    let _ = writeln!(
        md,
        "- edge: `{}`, RUST_LOG=info, one pool = the stub origin `{}` (~2 KB JSON; catalog Cache-Control on /api/products, no-store on /api/nocache)",
        t.edge_bind, t.origin_bind
    );
    let _ = writeln!(md);
    let _ = writeln!(md, "| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    for s in &t.scenarios {
        let Some(w) = median_by(&s.runs, |w| w.rps) else { continue };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {} | {} | {} |",
            s.scenario.label(),
            w.rps,
            ms(w.p50_us as f64),
            ms(w.p95_us as f64),
            ms(w.p99_us as f64),
            w.errors,
            all_runs(&s.runs)
        );
    }
    let (miss, direct) = (median_p50(&t.low_load_miss), median_p50(&t.low_load_direct));
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Miss overhead at low load (one connection): edge p50 {} − direct p50 {} = **{}**.",
        ms(miss as f64),
        ms(direct as f64),
        ms(miss as f64 - direct as f64)
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Artillery phases x{} (cold cache; each visitor: GET /api/products?utm_source=<unique>, think {:.1} s, GET /api/products/{{{}}}):",
        p.scale,
        THINK_SECONDS * p.scale.get(),
        p.slugs.join("|")
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| phase | visitors | requests | req/s | HIT | MISS | STALE | errors | hit ratio | p50 | p95 | p99 |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase in p.phases.iter().chain([&p.total]) {
        let _ = writeln!(md, "{}", phase_row(phase));
    }
    md
}

fn phase_row(p: &PhaseResult) -> String {
    let ms2 = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    format!(
        "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.4} | {} | {} | {} |",
        p.name.as_deref().unwrap_or("total"),
        p.visitors,
        p.requests(),
        p.rps(),
        p.hit,
        p.miss,
        p.stale,
        p.errors,
        p.hit_ratio(),
        ms2(p.latency.p50_us),
        ms2(p.latency.p95_us),
        ms2(p.latency.p99_us)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::edge::{EdgeScenario, EdgeScenarioRuns};
    use crate::machine::{Machine, UtcTime};
    use crate::stats::LatencySummary;

    fn wrk(rps: f64, p50_us: u64) -> WrkResult {
        WrkResult {
            requests: 1000,
            duration_us: 20_000_000,
            rps,
            p50_us,
            p95_us: 3060,
            p99_us: 8080,
            max_us: 20_000,
            errors_status: 0,
            errors_connect: 0,
            errors_read: 0,
            errors_write: 0,
            errors_timeout: 0,
            errors: 0,
        }
    }

    fn phase(name: Option<&str>, visitors: u64, hit: u64, miss: u64, seconds: f64) -> PhaseResult {
        PhaseResult {
            name: name.map(str::to_owned),
            seconds,
            visitors,
            hit,
            miss,
            stale: 0,
            errors: 0,
            latency: LatencySummary { p50_us: 280, p95_us: 430, p99_us: 3100, max_us: 5000 },
        }
    }

    #[test]
    fn the_report_has_the_three_tables_in_their_columns() {
        let t = EdgeThroughput {
            finished_at: UtcTime(1_796_035_000),
            machine: Machine { cores: 2, cpu: None, git_rev: "b892b46".into(), rustc: "rustc 1.95.0".into() },
            load_before: "1.90 4.00 5.50".into(),
            threads: 2,
            connections: 64,
            duration: "20s".parse().unwrap(),
            warmup: "3s".parse().unwrap(),
            latency_duration: "10s".parse().unwrap(),
            runs: 3,
            edge_bind: "127.0.0.1:8788".into(),
            origin_bind: "127.0.0.1:3900".into(),
            scenarios: vec![EdgeScenarioRuns {
                scenario: EdgeScenario::Hit,
                runs: vec![wrk(49_662.0, 900), wrk(66_716.0, 800), wrk(55_362.0, 930)],
            }],
            low_load_miss: vec![wrk(1.0, 74), wrk(1.0, 112), wrk(1.0, 74)],
            low_load_direct: vec![wrk(1.0, 19), wrk(1.0, 19), wrk(1.0, 20)],
        };
        let p = EdgePhases {
            finished_at: UtcTime(1_796_035_267),
            scale: "0.1".parse().unwrap(),
            slugs: vec!["classic-tee".into(), "hoodie".into()],
            phases: vec![phase(Some("warm-up"), 60, 117, 3, 6.2)],
            total: phase(None, 60, 117, 3, 6.2),
        };
        let expected = "\
## Edge benchmark (2026-11-30T10:41:07Z)

- machine: `nproc` = 2, unknown CPU; wrk, the edge and the stub origin share it; load average before: 1.90 4.00 5.50
- git rev: b892b46; rustc 1.95.0; release build
- load: wrk `-t2 -c64 -d20s`, 3 runs per scenario after a 3s warm-up; the run with the median req/s is shown; low-load latency `-t1 -c1 -d10s`, median of 3 p50s
- edge: `127.0.0.1:8788`, RUST_LOG=info, one pool = the stub origin `127.0.0.1:3900` (~2 KB JSON; catalog Cache-Control on /api/products, no-store on /api/nocache)

| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |
|---|---:|---:|---:|---:|---:|---|
| cache hit: GET /api/products via edge | 55362 | 0.93 ms | 3.06 ms | 8.08 ms | 0 | 49662 (0 err), 66716 (0 err), 55362 (0 err) |

Miss overhead at low load (one connection): edge p50 0.07 ms − direct p50 0.02 ms = **0.06 ms**.

Artillery phases x0.1 (cold cache; each visitor: GET /api/products?utm_source=<unique>, think 0.3 s, GET /api/products/{classic-tee|hoodie}):

| phase | visitors | requests | req/s | HIT | MISS | STALE | errors | hit ratio | p50 | p95 | p99 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| warm-up | 60 | 120 | 19.4 | 117 | 3 | 0 | 0 | 0.9750 | 0.28 ms | 0.43 ms | 3.10 ms |
| total | 60 | 120 | 19.4 | 117 | 3 | 0 | 0 | 0.9750 | 0.28 ms | 0.43 ms | 3.10 ms |
";
        assert_eq!(render(&t, &p), expected);
    }
}
