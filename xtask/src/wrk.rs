//! wrk, the closed-loop throughput generator: its duration arguments, how one run is started,
//! and the `BENCH_RESULT` line its Lua script (`wrk/report.lua`) prints.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The Lua script of every run: sets method and body from the environment, prints
/// `BENCH_RESULT` in `done()`.
pub const REPORT_LUA: &str = include_str!("wrk/report.lua");

/// A wrk time argument (`-d`, `--timeout`): a number with an optional unit `s`, `m` or `h`,
/// e.g. `30s`, `1m`, `0`. Kept as written, because it is passed to wrk and shown in reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WrkDuration {
    text: String,
    seconds: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("`{0}` is not a wrk duration (a number with an optional s, m or h, e.g. 30s)")]
pub struct BadDuration(String);

impl WrkDuration {
    /// Zero means "skip" for a warm-up.
    pub fn is_zero(&self) -> bool {
        self.seconds == 0.0
    }
}

impl FromStr for WrkDuration {
    type Err = BadDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (number, unit) = match text.char_indices().last() {
            Some((i, 's')) => (&text[..i], 1.0),
            Some((i, 'm')) => (&text[..i], 60.0),
            Some((i, 'h')) => (&text[..i], 3600.0),
            _ => (text, 1.0),
        };
        let plain = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
        match number.parse::<f64>() {
            Ok(n) if plain && n.is_finite() => Ok(Self { text: text.to_owned(), seconds: n * unit }),
            _ => Err(BadDuration(s.to_owned())),
        }
    }
}

impl TryFrom<String> for WrkDuration {
    type Error = BadDuration;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WrkDuration> for String {
    fn from(d: WrkDuration) -> Self {
        d.text
    }
}

impl fmt::Display for WrkDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What one `BENCH_RESULT` line says about a run (latencies in microseconds). Errors are wrk's
/// own counters: HTTP status >= 400 plus socket errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub errors_status: u64,
    pub errors_connect: u64,
    pub errors_read: u64,
    pub errors_write: u64,
    pub errors_timeout: u64,
    pub errors: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("no BENCH_RESULT line in wrk's output")]
    NoResultLine,
    #[error("BENCH_RESULT has no {0}")]
    Missing(&'static str),
    #[error("BENCH_RESULT {key}={value} is not a number")]
    NotANumber { key: &'static str, value: String },
}

impl WrkResult {
    /// The last `BENCH_RESULT` line of a run's combined output.
    pub fn from_output(output: &str) -> Result<Self, ParseError> {
        output.lines().rev().find(|l| l.starts_with("BENCH_RESULT ")).ok_or(ParseError::NoResultLine)?.parse()
    }
}

impl FromStr for WrkResult {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let fields: HashMap<&str, &str> = line.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
        fn get<T: FromStr>(fields: &HashMap<&str, &str>, key: &'static str) -> Result<T, ParseError> {
            let value = fields.get(key).ok_or(ParseError::Missing(key))?;
            value.parse().map_err(|_| ParseError::NotANumber { key, value: (*value).to_owned() })
        }
        Ok(Self {
            requests: get(&fields, "requests")?,
            duration_us: get(&fields, "duration_us")?,
            rps: get(&fields, "rps")?,
            p50_us: get(&fields, "p50_us")?,
            p95_us: get(&fields, "p95_us")?,
            p99_us: get(&fields, "p99_us")?,
            max_us: get(&fields, "max_us")?,
            errors_status: get(&fields, "errors_status")?,
            errors_connect: get(&fields, "errors_connect")?,
            errors_read: get(&fields, "errors_read")?,
            errors_write: get(&fields, "errors_write")?,
            errors_timeout: get(&fields, "errors_timeout")?,
            errors: get(&fields, "errors")?,
        })
    }
}

/// One wrk invocation: `wrk -tT -cC -dD --timeout X -s LUA URL`, with the request's method and
/// body handed to the Lua script through `BENCH_METHOD` / `BENCH_BODY`.
#[derive(Debug, Clone)]
pub struct WrkRun<'a> {
    pub url: &'a str,
    pub threads: u32,
    pub connections: u32,
    pub duration: &'a WrkDuration,
    pub timeout: &'a WrkDuration,
    pub method: &'a str,
    pub body: Option<&'a str>,
}

impl WrkRun<'_> {
    /// Runs wrk with its stdout and stderr in `output` (kept as the raw record) and reads the
    /// result line from it. A failed run prints that file and is an error.
    pub fn run(&self, lua: &Path, output: &Path) -> anyhow::Result<WrkResult> {
        let file = File::create(output).with_context(|| format!("creating {}", output.display()))?;
        let status = Command::new("wrk")
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}", self.duration))
            .args(["--timeout", &self.timeout.to_string(), "-s"])
            .arg(lua)
            .arg(self.url)
            .env("BENCH_METHOD", self.method)
            .env("BENCH_BODY", self.body.unwrap_or(""))
            .stdout(file.try_clone()?)
            .stderr(file)
            .status()
            .context("starting wrk (is it installed? scripts/lib.sh ensure_tool wrk)")?;
        let text = std::fs::read_to_string(output).unwrap_or_default();
        if !status.success() {
            eprint!("{text}");
            bail!("wrk failed ({status}) for {}", self.url);
        }
        WrkResult::from_output(&text).with_context(|| format!("reading {}", output.display()))
    }
}

/// `wrk -v`'s version number (`4.1.0`), if wrk runs.
pub fn version() -> Option<String> {
    let out = Command::new("wrk").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next()?.split_whitespace().nth(1).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "BENCH_RESULT requests=995123 duration_us=30001234 rps=33170.00 p50_us=1860 p95_us=3360 \
                        p99_us=4270 max_us=20111 errors_status=0 errors_connect=0 errors_read=1 errors_write=0 \
                        errors_timeout=2 errors=3";

    #[test]
    fn a_result_line_is_read_field_by_field() {
        let r: WrkResult = LINE.parse().unwrap();
        assert_eq!((r.requests, r.duration_us, r.rps), (995_123, 30_001_234, 33_170.0));
        assert_eq!((r.p50_us, r.p95_us, r.p99_us, r.max_us), (1860, 3360, 4270, 20_111));
        assert_eq!((r.errors_read, r.errors_timeout, r.errors), (1, 2, 3));
    }

    #[test]
    fn the_last_result_line_of_the_output_counts() {
        let output = format!(
            "Running 30s test @ http://127.0.0.1:3100/api/products\n  2 threads and 64 connections\n{}\n{LINE}\n",
            LINE.replace("requests=995123", "requests=1")
        );
        assert_eq!(WrkResult::from_output(&output).unwrap().requests, 995_123);
    }

    #[test]
    fn output_without_a_result_line_is_an_error() {
        assert_eq!(WrkResult::from_output("unable to connect to 127.0.0.1:3100"), Err(ParseError::NoResultLine));
    }

    #[test]
    fn a_missing_or_garbled_field_is_named() {
        assert_eq!("BENCH_RESULT requests=1".parse::<WrkResult>(), Err(ParseError::Missing("duration_us")));
        let garbled = LINE.replace("p95_us=3360", "p95_us=nan-ish");
        assert_eq!(
            garbled.parse::<WrkResult>(),
            Err(ParseError::NotANumber { key: "p95_us", value: "nan-ish".into() })
        );
    }

    #[test]
    fn durations_keep_their_text_and_know_zero() {
        let d: WrkDuration = "30s".parse().unwrap();
        assert_eq!((d.to_string(), d.is_zero()), ("30s".to_owned(), false));
        assert!("0".parse::<WrkDuration>().unwrap().is_zero());
        assert!("0s".parse::<WrkDuration>().unwrap().is_zero());
        assert_eq!("2m".parse::<WrkDuration>().unwrap().seconds, 120.0);
        for bad in ["", "s", "thirty", "-1s", "3 s", "1e3"] {
            assert!(bad.parse::<WrkDuration>().is_err(), "{bad:?} accepted");
        }
    }
}
