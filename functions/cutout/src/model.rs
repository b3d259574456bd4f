//! Which model to run, where its file lives, and how its input is normalised.
//!
//! The four rembg models supported here share U²-Net's interface (one RGB image in, a stack
//! of sigmoid maps out, the first being the final prediction) and differ only in input size
//! and normalisation, which this module records exactly as rembg 2.0.86's sessions do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::ModelError;

/// The rembg models this engine knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelName {
    /// `u2netp`: the 4.6 MB "portable" U²-Net; the default because it is small and fast.
    #[default]
    U2netp,
    /// `u2net`: the full 176 MB U²-Net.
    U2net,
    /// `silueta`: a 43 MB pruned U²-Net.
    Silueta,
    /// `isnet-general-use`: IS-Net (DIS), 1024×1024 input.
    IsnetGeneralUse,
}

impl ModelName {
    /// Every known model.
    pub const ALL: [ModelName; 4] =
        [ModelName::U2netp, ModelName::U2net, ModelName::Silueta, ModelName::IsnetGeneralUse];

    /// rembg's name for the model (also the file stem: `<name>.onnx`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::U2netp => "u2netp",
            ModelName::U2net => "u2net",
            ModelName::Silueta => "silueta",
            ModelName::IsnetGeneralUse => "isnet-general-use",
        }
    }

    /// The file name rembg stores the model under.
    pub fn file_name(self) -> String {
        format!("{}.onnx", self.as_str())
    }

    /// rembg's published md5 of the model file.
    pub fn md5(self) -> &'static str {
        match self {
            ModelName::U2netp => "8e83ca70e441ab06c318d82300c84806",
            ModelName::U2net => "60024c5c889badc19c04ad937298a77b",
            ModelName::Silueta => "55e59e0d8062d2f5d013f4725ee84782",
            ModelName::IsnetGeneralUse => "fc16ebd8b0c10d971d3513d564d01e29",
        }
    }

    /// SHA-256 of rembg's published file, for the models whose file this project has
    /// verified (its md5 is rembg's own, checked by `scripts/fetch-model.sh`). The engine
    /// refuses a file of that name with another digest unless `MODEL_SHA256` names it.
    pub fn sha256(self) -> Option<ModelDigest> {
        match self {
            ModelName::U2netp => {
                Some(ModelDigest(hex32(b"309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8")))
            }
            // Not verified here (the files are not fetched by this project): no digest rather
            // than an unchecked one.
            ModelName::U2net | ModelName::Silueta | ModelName::IsnetGeneralUse => None,
        }
    }

    /// Input geometry and normalisation, as in rembg's session classes.
    pub fn preprocess(self) -> Preprocess {
        match self {
            ModelName::U2netp | ModelName::U2net | ModelName::Silueta => Preprocess::U2NET,
            ModelName::IsnetGeneralUse => Preprocess::ISNET,
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| ModelError::UnknownName(s.to_string()))
    }
}

/// A model file's SHA-256: what start-up compares the file with before loading it, so a
/// truncated upload or the wrong file in a deployment package stops the function at once
/// instead of producing bad cut-outs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelDigest([u8; 32]);

/// A text that is not a SHA-256 in hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a SHA-256 as 64 hexadecimal digits")]
pub struct InvalidDigest;

const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 64 hex digits as bytes; for the built-in digests, which are written correctly (a test
/// parses each one back).
const fn hex32(text: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        let (hi, lo) = match (hex_value(text[2 * i]), hex_value(text[2 * i + 1])) {
            (Some(hi), Some(lo)) => (hi, lo),
            _ => (0, 0),
        };
        out[i] = (hi << 4) | lo;
        i += 1;
    }
    out
}

impl ModelDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> ModelDigest {
        use sha2::Digest;
        ModelDigest(sha2::Sha256::digest(bytes).into())
    }

    /// The digest of the file at `path`, read in 1 MiB blocks.
    pub fn of_file(path: &Path) -> Result<ModelDigest, ModelError> {
        use sha2::Digest;
        use std::io::Read;
        let io = |source| ModelError::Io { path: path.to_path_buf(), source };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut block).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&block[..n]);
        }
        Ok(ModelDigest(hasher.finalize().into()))
    }

    /// Checks that the file at `path` has this digest; `expected_from` says who expects it
    /// (`MODEL_SHA256`, or the built-in digest of a named model), for the error.
    pub fn verify_file(&self, path: &Path, expected_from: &str) -> Result<(), ModelError> {
        let found = ModelDigest::of_file(path)?;
        if found != *self {
            return Err(ModelError::ChecksumMismatch {
                path: path.to_path_buf(),
                expected: *self,
                expected_from: expected_from.to_owned(),
                found,
            });
        }
        Ok(())
    }
}

impl FromStr for ModelDigest {
    type Err = InvalidDigest;
    /// 64 hexadecimal digits, either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(InvalidDigest);
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
                _ => return Err(InvalidDigest),
            }
        }
        Ok(ModelDigest(out))
    }
}

impl fmt::Display for ModelDigest {
    /// Lower-case hex, as `sha256sum` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ModelDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelDigest({self})")
    }
}

impl<'de> serde::Deserialize<'de> for ModelDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How an image becomes the model's input tensor: the square side it is resized to and the
/// per-channel mean and standard deviation (RGB order) applied after dividing by the image's
/// maximum value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// Side of the square input (320 for U²-Net models, 1024 for IS-Net).
    pub size: usize,
    /// Subtracted per channel.
    pub mean: [f64; 3],
    /// Divided by per channel.
    pub std: [f64; 3],
}

impl Preprocess {
    /// rembg's `U2netSession`, `U2netpSession`, `SiluetaSession`: ImageNet statistics.
    pub const U2NET: Preprocess = Preprocess { size: 320, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    /// rembg's `DisSession` (isnet-general-use): mean 0.5, std 1.0.
    pub const ISNET: Preprocess = Preprocess { size: 1024, mean: [0.5, 0.5, 0.5], std: [1.0, 1.0, 1.0] };
}

/// Which model to load: a known name (looked up in the models directories) or a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A rembg model by name.
    Named(ModelName),
    /// An ONNX file. Its normalisation comes from its file stem when that is a known name,
    /// otherwise from its input size (1024 → IS-Net's, anything else → U²-Net's).
    Path(PathBuf),
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec::Named(ModelName::default())
    }
}

impl FromStr for ModelSpec {
    type Err = ModelError;
    /// A known name, or anything that looks like a path (contains a separator or ends in
    /// `.onnx`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(name) = s.parse::<ModelName>() {
            return Ok(ModelSpec::Named(name));
        }
        if s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.ends_with(".onnx") {
            return Ok(ModelSpec::Path(PathBuf::from(s)));
        }
        Err(ModelError::UnknownName(s.to_string()))
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Named(n) => n.fmt(f),
            ModelSpec::Path(p) => p.display().fmt(f),
        }
    }
}

impl ModelSpec {
    /// The known model this spec refers to, if any (by name, or by a path's file stem).
    pub fn known_name(&self) -> Option<ModelName> {
        match self {
            ModelSpec::Named(n) => Some(*n),
            ModelSpec::Path(p) => p.file_stem()?.to_str()?.parse().ok(),
        }
    }

    /// Resolves the spec to an existing file, looking for named models in
    /// [`default_search_dirs`].
    pub fn resolve(&self) -> Result<PathBuf, ModelError> {
        self.resolve_in(&default_search_dirs())
    }

    /// Resolves the spec to an existing file, looking for named models in `dirs`, in order.
    pub fn resolve_in(&self, dirs: &[PathBuf]) -> Result<PathBuf, ModelError> {
        match self {
            ModelSpec::Path(p) => {
                if p.is_file() {
                    Ok(p.clone())
                } else {
                    Err(ModelError::NotFound { path: p.clone(), hint: "check MODEL_PATH / --model".into() })
                }
            }
            ModelSpec::Named(name) => {
                let file = name.file_name();
                dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()).ok_or_else(|| ModelError::NotFound {
                    path: PathBuf::from(&file),
                    hint: format!(
                        "looked in {}; run scripts/fetch-model.sh or set MODELS_DIR / MODEL_PATH",
                        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        }
    }
}

/// Where named models are looked for when nothing is configured: `./models` and the
/// repository's models directory seen from this crate (for `cargo test`). Configured
/// directories (`MODELS_DIR`, rembg's `U2NET_HOME`, `~/.u2net`) come first; see
/// [`crate::EngineSettings::search_dirs`].
pub fn default_search_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("models"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_as_rembg_spells_them() {
        for m in ModelName::ALL {
            assert_eq!(m.as_str().parse::<ModelName>().unwrap(), m);
            assert_eq!(m.to_string(), m.as_str());
        }
        assert!("u2netq".parse::<ModelName>().is_err());
    }

    #[test]
    fn specs_are_names_or_paths() {
        assert_eq!("u2net".parse::<ModelSpec>().unwrap(), ModelSpec::Named(ModelName::U2net));
        assert_eq!("models/x.onnx".parse::<ModelSpec>().unwrap(), ModelSpec::Path("models/x.onnx".into()));
        assert!(matches!("nonsense".parse::<ModelSpec>(), Err(ModelError::UnknownName(_))));
    }

    #[test]
    fn a_path_named_like_a_known_model_uses_its_normalisation() {
        let spec = ModelSpec::Path("/tmp/isnet-general-use.onnx".into());
        assert_eq!(spec.known_name(), Some(ModelName::IsnetGeneralUse));
        assert_eq!(spec.known_name().unwrap().preprocess(), Preprocess::ISNET);
    }

    #[test]
    fn digests_parse_from_hex_in_either_case_and_print_lower_case() {
        let text = "00ff".repeat(16);
        let digest: ModelDigest = text.to_uppercase().parse().unwrap();
        assert_eq!(digest.to_string(), text);
        for bad in ["", "00ff", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64), &format!("{}é", "0".repeat(62))] {
            assert_eq!(bad.parse::<ModelDigest>(), Err(InvalidDigest), "{bad:?}");
        }
    }

    #[test]
    fn built_in_digests_are_well_formed_and_only_for_verified_files() {
        let u2netp = ModelName::U2netp.sha256().expect("u2netp's digest is known");
        // The const parser has no error path; parsing the printed form back proves the
        // literal was 64 valid hex digits (an invalid one would have become zeros).
        assert_eq!(u2netp.to_string().parse::<ModelDigest>(), Ok(u2netp));
        assert_ne!(u2netp.0, [0; 32]);
        assert!(ModelName::ALL.iter().filter(|m| m.sha256().is_some()).count() == 1, "only u2netp is verified here");
    }

    #[test]
    fn a_file_is_verified_against_its_digest() {
        let dir = std::env::temp_dir().join(format!("cutout-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        std::fs::write(&path, b"model bytes").unwrap();
        let right = ModelDigest::of(b"model bytes");
        assert_eq!(ModelDigest::of_file(&path).unwrap(), right);
        right.verify_file(&path, "MODEL_SHA256").unwrap();
        let wrong = ModelDigest::of(b"other bytes");
        let err = wrong.verify_file(&path, "MODEL_SHA256").unwrap_err().to_string();
        assert!(err.contains(&wrong.to_string()) && err.contains(&right.to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn isnet_uses_its_own_statistics_and_size() {
        let p = ModelName::IsnetGeneralUse.preprocess();
        assert_eq!(p.size, 1024);
        assert_eq!(p.mean, [0.5; 3]);
        assert_eq!(p.std, [1.0; 3]);
        assert_eq!(ModelName::Silueta.preprocess().size, 320);
    }
}
