//! The engine's settings as a process sets them. The library never reads the environment:
//! a binary parses these (they are named as the variables are) and passes them in, so a bad
//! value stops start-up with a message instead of being silently ignored.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

use crate::engine::EngineOptions;
use crate::error::ModelError;
use crate::model::{default_search_dirs, ModelDigest, ModelSpec};

/// Which model to load, where to look for it, and how to run it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct EngineSettings {
    /// A model file to use; overrides any name.
    pub model_path: Option<PathBuf>,
    /// A model name (`u2netp`, `u2net`, …) or path, when `MODEL_PATH` is unset; default `u2netp`.
    pub cutout_model: Option<String>,
    /// Directory holding `<name>.onnx` files, searched first.
    pub models_dir: Option<PathBuf>,
    /// rembg's own model directory, so a shared rembg cache works.
    pub u2net_home: Option<PathBuf>,
    /// `~/.u2net` is searched last, as rembg does.
    pub home: Option<PathBuf>,
    /// Threads for tract's matrix kernels; default all cores.
    pub cutout_threads: Option<NonZeroUsize>,
    /// `false` turns off the Resize → matmul graph rewrite (same masks, slower).
    pub cutout_resize_matmul: Option<bool>,
    /// The model file's SHA-256 (hex); default: the built-in digest of a named model when
    /// the engine knows one, else no check.
    pub model_sha256: Option<ModelDigest>,
}

impl EngineSettings {
    /// `MODEL_PATH` if set, else `CUTOUT_MODEL`, else `u2netp`.
    pub fn model_spec(&self) -> Result<ModelSpec, ModelError> {
        match (&self.model_path, &self.cutout_model) {
            (Some(path), _) => Ok(ModelSpec::Path(path.clone())),
            (None, Some(name)) => name.parse(),
            (None, None) => Ok(ModelSpec::default()),
        }
    }

    /// The digest the model file must have and who asks for it: `MODEL_SHA256`, else the
    /// built-in digest of the named model `spec` refers to (by name or file stem), if known.
    pub fn expected_digest(&self, spec: &ModelSpec) -> Option<(ModelDigest, String)> {
        match (self.model_sha256, spec.known_name()) {
            (Some(digest), _) => Some((digest, "MODEL_SHA256".to_owned())),
            (None, Some(name)) => name.sha256().map(|d| (d, format!("the built-in digest of {name}"))),
            (None, None) => None,
        }
    }

    /// Where a named model is looked for, in order: `MODELS_DIR`, `U2NET_HOME`, `./models`,
    /// the repository's `models/`, `~/.u2net`.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [&self.models_dir, &self.u2net_home].into_iter().flatten().cloned().collect();
        dirs.extend(default_search_dirs());
        dirs.extend(self.home.iter().map(|home| home.join(".u2net")));
        dirs
    }

    /// Engine options: defaults, overridden where set.
    pub fn options(&self) -> EngineOptions {
        let mut options = EngineOptions::default();
        if let Some(threads) = self.cutout_threads {
            options.threads = threads.get();
        }
        if let Some(on) = self.cutout_resize_matmul {
            options.resize_as_matmul = on;
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelName;

    #[test]
    fn a_model_path_wins_over_a_name_and_the_default_is_u2netp() {
        let s = EngineSettings {
            model_path: Some("/m/custom.onnx".into()),
            cutout_model: Some("u2net".into()),
            ..Default::default()
        };
        assert_eq!(s.model_spec().unwrap(), ModelSpec::Path("/m/custom.onnx".into()));
        let s = EngineSettings { cutout_model: Some("u2net".into()), ..Default::default() };
        assert_eq!(s.model_spec().unwrap(), ModelSpec::Named(ModelName::U2net));
        assert_eq!(EngineSettings::default().model_spec().unwrap(), ModelSpec::default());
        let s = EngineSettings { cutout_model: Some("no-such-model".into()), ..Default::default() };
        assert!(s.model_spec().is_err());
    }

    #[test]
    fn the_expected_digest_is_model_sha256_else_a_known_models_own() {
        let u2netp = ModelName::U2netp.sha256().unwrap();
        let plain = EngineSettings::default();
        assert_eq!(plain.expected_digest(&ModelSpec::Named(ModelName::U2netp)).map(|e| e.0), Some(u2netp));
        let by_stem = ModelSpec::Path("/var/task/models/u2netp.onnx".into());
        assert_eq!(plain.expected_digest(&by_stem).map(|e| e.0), Some(u2netp), "a path named like u2netp is u2netp");
        assert_eq!(plain.expected_digest(&ModelSpec::Path("/m/custom.onnx".into())), None);
        assert_eq!(plain.expected_digest(&ModelSpec::Named(ModelName::U2net)), None, "no digest we have not verified");

        let pinned = ModelDigest::of(b"a custom export");
        let s = EngineSettings { model_sha256: Some(pinned), ..Default::default() };
        assert_eq!(s.expected_digest(&by_stem), Some((pinned, "MODEL_SHA256".to_owned())), "MODEL_SHA256 wins");
    }

    #[test]
    fn configured_directories_are_searched_first_and_home_last() {
        let s = EngineSettings {
            models_dir: Some("/a".into()),
            u2net_home: Some("/b".into()),
            home: Some("/home/x".into()),
            ..Default::default()
        };
        let dirs = s.search_dirs();
        assert_eq!(dirs[..2], [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(dirs.last(), Some(&PathBuf::from("/home/x/.u2net")));
    }

    #[test]
    fn options_default_to_all_cores_and_the_rewrite_on() {
        assert_eq!(EngineSettings::default().options(), EngineOptions::default());
        let s = EngineSettings {
            cutout_threads: NonZeroUsize::new(1),
            cutout_resize_matmul: Some(false),
            ..Default::default()
        };
        assert_eq!(s.options(), EngineOptions { threads: 1, resize_as_matmul: false });
    }
}
