//! api.md: the wrk scenarios (the run with the median req/s) and the paced order runs (the run
//! with the median p95).

use std::fmt::Write;

use super::ms;
use crate::bench::api::{ApiResults, PacedRuns, ScenarioRuns};
use crate::stats::median_by;
use crate::wrk::WrkResult;

pub fn render(r: &ApiResults) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let warm =
        if r.warmup.is_zero() { "no warm-up".to_owned() } else { format!("a {} warm-up (not recorded)", r.warmup) };
    let or_default = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".into());
    let log_lines: Vec<String> =
        r.scenarios.iter().map(|s| format!("{} {}", s.scenario.key(), s.api_log_lines)).collect();

    let _ = writeln!(md, "## API benchmark ({})", r.finished_at.iso8601());
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- machine: `nproc` = {}, {}; load generator (wrk) on the same machine",
        m.cores,
        m.cpu.as_deref().unwrap_or("unknown CPU")
    );
    let _ = writeln!(md, "- git rev: {}; {}; release build", m.git_rev, m.rustc);
    let _ = writeln!(
        md,
        "- load: wrk {}, `-t{} -c{} -d{} --timeout {}`, {} run(s) per scenario after {warm}; the run with the median req/s is shown",
        r.wrk_version.as_deref().unwrap_or("?"),
        r.threads,
        r.connections,
        r.duration,
        r.timeout,
        r.runs
    );
    let _ = writeln!(
        md,
        "- API: `{}`, RUST_LOG=info, LOG_FORMAT=text (logs written to a file), DB_MAX_CONNECTIONS={}, MAX_CONCURRENCY={}",
        r.bind,
        or_default(&r.db_max_connections),
        or_default(&r.max_concurrency)
    );
    let _ = writeln!(md, "- Postgres {} at `{}`", r.postgres_version, r.database);
    let _ = writeln!(md, "- API log lines written per scenario (warm-up + runs): {}", log_lines.join(", "));
    let _ = writeln!(
        md,
        "- errors = HTTP status >= 400 + socket errors (connect/read/write/timeout); every scenario answered 2xx in a pre-flight request"
    );
    let _ = writeln!(md);
    let _ = writeln!(md, "| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    for s in &r.scenarios {
        if let Some(row) = scenario_row(s) {
            let _ = writeln!(md, "{row}");
        }
    }
    if let Some(paced) = &r.paced {
        write_paced(&mut md, paced, r.runs);
    }
    md
}

/// `N`, or `N (status a, connect b, read c, write d, timeout e)` when there were errors.
fn errors_cell(w: &WrkResult) -> String {
    if w.errors == 0 {
        return "0".into();
    }
    format!(
        "{} (status {}, connect {}, read {}, write {}, timeout {})",
        w.errors, w.errors_status, w.errors_connect, w.errors_read, w.errors_write, w.errors_timeout
    )
}

/// `33172 (0 err), 31580 (0 err), ...` in run order.
pub fn all_runs(runs: &[WrkResult]) -> String {
    runs.iter().map(|w| format!("{:.0} ({} err)", w.rps, w.errors)).collect::<Vec<_>>().join(", ")
}

fn scenario_row(s: &ScenarioRuns) -> Option<String> {
    let w = median_by(&s.runs, |w| w.rps)?;
    Some(format!(
        "| {} | {:.0} | {} | {} | {} | {} | {} |",
        s.scenario.label(),
        w.rps,
        ms(w.p50_us as f64),
        ms(w.p95_us as f64),
        ms(w.p99_us as f64),
        errors_cell(w),
        all_runs(&s.runs)
    ))
}

fn write_paced(md: &mut String, paced: &PacedRuns, runs: u32) {
    let Some(p) = median_by(&paced.runs, |p| p.latency.p95_us) else { return };
    let all: Vec<String> = paced.runs.iter().map(|p| format!("p95 {}", ms(p.latency.p95_us as f64))).collect();
    let l = &p.latency;
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Order path at a fixed rate (`cargo xtask load paced`, open loop, latency from the scheduled send time; {runs} run(s) of {}s, the run with the median p95 shown):",
        paced.seconds
    );
    let _ = writeln!(md);
    let _ = writeln!(md, "| scenario | target req/s | achieved req/s | p50 | p95 | p99 | max | errors | all runs |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let _ = writeln!(
        md,
        "| POST /api/orders | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
        paced.rate,
        p.achieved_rps,
        ms(l.p50_us as f64),
        ms(l.p95_us as f64),
        ms(l.p99_us as f64),
        ms(l.max_us as f64),
        p.errors,
        all.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::api::Scenario;
    use crate::load::paced::PacedResult;
    use crate::machine::{Machine, UtcTime};
    use crate::stats::LatencySummary;

    pub fn wrk(rps: f64, p50_us: u64, errors: u64) -> WrkResult {
        WrkResult {
            requests: 1000,
            duration_us: 30_000_000,
            rps,
            p50_us,
            p95_us: p50_us * 2,
            p99_us: p50_us * 3,
            max_us: p50_us * 10,
            errors_status: errors,
            errors_connect: 0,
            errors_read: 0,
            errors_write: 0,
            errors_timeout: 0,
            errors,
        }
    }

    fn paced(p95_us: u64) -> PacedResult {
        PacedResult {
            rate: 200,
            sent: 6000,
            ok: 6000,
            errors: 0,
            achieved_rps: 200.0,
            latency: LatencySummary { p50_us: 4700, p95_us, p99_us: 8500, max_us: 26_100 },
        }
    }

    fn results() -> ApiResults {
        ApiResults {
            finished_at: UtcTime(1_796_035_267),
            machine: Machine {
                cores: 2,
                cpu: Some("AMD EPYC 7B13".into()),
                git_rev: "68939f1".into(),
                rustc: "rustc 1.95.0".into(),
            },
            wrk_version: Some("4.1.0".into()),
            threads: 2,
            connections: 64,
            duration: "30s".parse().unwrap(),
            timeout: "2s".parse().unwrap(),
            warmup: "3s".parse().unwrap(),
            runs: 3,
            bind: "127.0.0.1:3100".into(),
            db_max_connections: None,
            max_concurrency: Some("4".into()),
            postgres_version: "15.20".into(),
            database: "postgres://postgres:***@127.0.0.1:5432/stolentee_bench".into(),
            scenarios: vec![
                ScenarioRuns {
                    scenario: Scenario::Products,
                    runs: vec![wrk(37_392.4, 1700, 0), wrk(33_172.2, 1860, 0), wrk(32_935.0, 1900, 0)],
                    api_log_lines: 3_200_000,
                },
                ScenarioRuns {
                    scenario: Scenario::Order,
                    runs: vec![wrk(856.0, 70_000, 0), wrk(819.0, 75_800, 2)],
                    api_log_lines: 80_000,
                },
            ],
            paced: Some(PacedRuns { rate: 200, seconds: 30, runs: vec![paced(5900), paced(5700), paced(7300)] }),
        }
    }

    #[test]
    fn the_report_has_the_header_lines_and_the_median_run_per_scenario() {
        let md = render(&results());
        let expected = "\
## API benchmark (2026-11-30T10:41:07Z)

- machine: `nproc` = 2, AMD EPYC 7B13; load generator (wrk) on the same machine
- git rev: 68939f1; rustc 1.95.0; release build
- load: wrk 4.1.0, `-t2 -c64 -d30s --timeout 2s`, 3 run(s) per scenario after a 3s warm-up (not recorded); the run with the median req/s is shown
- API: `127.0.0.1:3100`, RUST_LOG=info, LOG_FORMAT=text (logs written to a file), DB_MAX_CONNECTIONS=default, MAX_CONCURRENCY=4
- Postgres 15.20 at `postgres://postgres:***@127.0.0.1:5432/stolentee_bench`
- API log lines written per scenario (warm-up + runs): products 3200000, order 80000
- errors = HTTP status >= 400 + socket errors (connect/read/write/timeout); every scenario answered 2xx in a pre-flight request

| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |
|---|---:|---:|---:|---:|---:|---|
| GET /api/products | 33172 | 1.86 ms | 3.72 ms | 5.58 ms | 0 | 37392 (0 err), 33172 (0 err), 32935 (0 err) |
| POST /api/orders (new order + intent each) | 819 | 75.80 ms | 151.60 ms | 227.40 ms | 2 (status 2, connect 0, read 0, write 0, timeout 0) | 856 (0 err), 819 (2 err) |
";
        assert!(md.starts_with(expected), "{md}");
    }

    #[test]
    fn the_paced_table_shows_the_run_with_the_median_p95() {
        let md = render(&results());
        assert!(md.contains("3 run(s) of 30s, the run with the median p95 shown):"), "{md}");
        assert!(md.ends_with(
            "| scenario | target req/s | achieved req/s | p50 | p95 | p99 | max | errors | all runs |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|\n\
             | POST /api/orders | 200 | 200.0 | 4.70 ms | 5.90 ms | 8.50 ms | 26.10 ms | 0 | p95 5.90 ms, p95 5.70 ms, p95 7.30 ms |\n"
        ));
    }

    #[test]
    fn without_paced_runs_or_warm_up_the_report_says_so() {
        let mut r = results();
        r.paced = None;
        r.warmup = "0".parse().unwrap();
        let md = render(&r);
        assert!(md.contains("after no warm-up;"));
        assert!(!md.contains("fixed rate"));
    }
}
