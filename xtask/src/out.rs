//! Where measurements and reports go: `target/bench/` (reports) and `target/bench/raw/` (wrk
//! output, logs, and the JSON each `bench` command saves for `report`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wrk;

/// The repository root: this crate lives in `<root>/xtask`.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `<repo>/target/bench`, whatever CARGO_TARGET_DIR says (reports stay where the docs say).
pub fn default_out_dir() -> PathBuf {
    repo_root().join("target").join("bench")
}

/// A path as the repository sees it, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
}

impl OutDir {
    /// Creates `root` and `root/raw`.
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        let out = Self { root: root.to_path_buf() };
        std::fs::create_dir_all(out.raw_dir()).with_context(|| format!("creating {}", out.raw_dir().display()))?;
        Ok(out)
    }

    /// An existing directory, for reading saved measurements.
    pub fn existing(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn raw_dir(&self) -> PathBuf {
        self.root.join("raw")
    }

    pub fn raw(&self, name: &str) -> PathBuf {
        self.raw_dir().join(name)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes wrk's Lua script to `raw/wrk-report.lua` and returns its path.
    pub fn wrk_script(&self) -> anyhow::Result<PathBuf> {
        let path = self.raw("wrk-report.lua");
        std::fs::write(&path, wrk::REPORT_LUA).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    pub fn save_json<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<PathBuf> {
        let path = self.raw(name);
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    pub fn load_json<T: DeserializeOwned>(&self, name: &str) -> anyhow::Result<T> {
        let path = self.raw(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run the benchmark first)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
