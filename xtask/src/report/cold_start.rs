//! The cold-start table: one row per saved `raw/cold-start-*.json`.

use std::fmt::Write;

use crate::bench::cold_start::Result;

pub fn render(results: &[Result], machine: &str) -> String {
    let mut out =
        String::from("| function | CPU | runs | init (median) | first response (median) | all runs: init ms |\n");
    out.push_str("|---|---|---:|---:|---:|---|\n");
    for r in results {
        // The wrapper's last argument is the cgroup, named after its quota (`…-cold-start-29`).
        let cpu = match r.wrapper.last().and_then(|cg| cg.rsplit_once("cold-start-")) {
            Some((_, percent)) => format!("{percent}% of a core"),
            None if r.wrapper.is_empty() => "unlimited".to_owned(),
            None => r.wrapper.join(" "),
        };
        let all: Vec<String> = r.runs.iter().map(|x| format!("{:.1}", x.init_ms)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {} |",
            r.name,
            cpu,
            r.runs.len(),
            r.median.init_ms,
            r.median.first_response_ms,
            all.join(" · ")
        );
    }
    let _ = writeln!(out, "\n{machine}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::cold_start::ColdStart;

    #[test]
    fn a_row_per_function_with_its_cpu_share_and_medians() {
        let run = |i, f| ColdStart { init_ms: i, first_response_ms: f };
        let results = vec![
            Result {
                name: "api".into(),
                binary_bytes: 1,
                runs: vec![run(20.0, 25.0), run(18.0, 22.0)],
                median: run(18.0, 22.0),
                wrapper: vec![],
            },
            Result {
                name: "api".into(),
                binary_bytes: 1,
                runs: vec![run(60.0, 70.0)],
                median: run(60.0, 70.0),
                wrapper: vec!["in-cgroup.sh".into(), "/sys/fs/cgroup/cpu/stolentee-cold-start-29".into()],
            },
        ];
        let table = render(&results, "machine");
        assert!(table.contains("| api | unlimited | 2 | 18.0 ms | 22.0 ms | 20.0 · 18.0 |"), "{table}");
        assert!(table.contains("| api | 29% of a core | 1 | 60.0 ms | 70.0 ms | 60.0 |"), "{table}");
    }
}
