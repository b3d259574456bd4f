//! What a report says about where and when it was measured: cores, CPU, git revision,
//! compiler, load average, UTC time.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`: the cores this process may run on.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: Option<String>,
    /// Short hash, `(dirty)` when the work tree has changes; `no commit` outside git.
    pub git_rev: String,
    /// `rustc --version`, `?` when unknown.
    pub rustc: String,
}

impl Machine {
    pub fn describe() -> Self {
        Self { cores: cores(), cpu: cpu_model(), git_rev: git_rev(), rustc: rustc_version() }
    }
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `nproc`, which honours CPU affinity as the scripts always did; the standard library's
/// estimate when it is missing.
pub fn cores() -> usize {
    output_of("nproc", &[])
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn git_rev() -> String {
    let Some(rev) = output_of("git", &["rev-parse", "--short", "HEAD"]) else { return "no commit".into() };
    match output_of("git", &["status", "--porcelain"]) {
        Some(changes) if !changes.is_empty() => format!("{rev} (dirty)"),
        _ => rev,
    }
}

fn rustc_version() -> String {
    output_of("rustc", &["--version"]).unwrap_or_else(|| "?".into())
}

/// The 1-, 5- and 15-minute load averages as /proc/loadavg writes them (`0.14 0.20 0.31`),
/// `?` where there is no such file. Benchmarks record it because the machine is shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// Seconds since the Unix epoch, shown in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UtcTime(pub u64);

impl UtcTime {
    pub fn now() -> Self {
        Self(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// `2026-11-28T10:41:07Z`
    pub fn iso8601(self) -> String {
        let (y, m, d) = civil_from_days((self.0 / 86_400) as i64);
        let s = self.0 % 86_400;
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
    }

    /// `2026-11-28`
    pub fn date(self) -> String {
        let (y, m, d) = civil_from_days((self.0 / 86_400) as i64);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_written_as_iso_8601() {
        assert_eq!(UtcTime(0).iso8601(), "1970-01-01T00:00:00Z");
        assert_eq!(UtcTime(951_782_400).iso8601(), "2000-02-29T00:00:00Z");
        assert_eq!(UtcTime(1_796_035_267).iso8601(), "2026-11-30T10:41:07Z");
        assert_eq!(UtcTime(1_796_035_267).date(), "2026-11-30");
    }

    #[test]
    fn the_load_average_is_three_numbers_or_a_question_mark() {
        let load = load_average();
        assert!(load == "?" || load.split(' ').count() == 3, "{load}");
    }
}
