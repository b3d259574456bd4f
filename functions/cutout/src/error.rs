//! Error types.
//!
//! Two families, because callers must treat them differently: an [`ImageError`] means the
//! *input* is bad (a queue worker marks the job failed and does not retry), every other
//! [`CutoutError`] is the service's own problem (missing model, inference or encoding fault)
//! and may be retried or alerted on. [`CutoutError::is_bad_input`] makes that split explicit.

use std::path::PathBuf;

use crate::limits::InputFormats;

/// Why an uploaded file was refused before or during decoding.
///
/// Every variant is produced without decoding more than the file's header where possible,
/// so hostile files (decompression bombs, huge claimed sizes) cost milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Zero bytes were supplied.
    #[error("the file is empty")]
    Empty,
    /// The first bytes match no known image signature (e.g. a text file named `.png`).
    #[error("not an image: the file's signature matches no known image format")]
    NotAnImage,
    /// A recognised image format that this service does not accept.
    #[error("unsupported image format {format}; accepted: {accepted}")]
    UnsupportedFormat {
        /// The detected format, e.g. `"Avif"`.
        format: String,
        /// What the decode would have accepted (the limits' formats).
        accepted: InputFormats,
    },
    /// The header declares a width or height of zero.
    #[error("the image has no pixels ({width}×{height})")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The header declares dimensions beyond the configured [`crate::DecodeLimits`].
    #[error("image too large: {width}×{height} exceeds the limit ({limit})")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Which limit was hit, in words.
        limit: String,
    },
    /// Decoding would need more memory than [`crate::DecodeLimits::max_alloc`].
    #[error("decoding the image would need more than {max_alloc} bytes")]
    AllocationLimit {
        /// The allocation budget that would have been exceeded.
        max_alloc: u64,
    },
    /// The file is cut short or its data is malformed.
    #[error("corrupt or truncated {format} image: {detail}")]
    Corrupt {
        /// The detected format.
        format: String,
        /// The decoder's explanation.
        detail: String,
    },
}

/// A model could not be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model name is not one of the known rembg models.
    #[error("unknown model {0:?}: expected u2netp, u2net, silueta, isnet-general-use or a path to an .onnx file")]
    UnknownName(String),
    /// No model file at the resolved path.
    #[error("model file {path} not found ({hint})")]
    NotFound {
        /// Where the file was looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// Reading the file failed.
    #[error("reading model file {path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The model file is not the one expected: corrupt, truncated, or another model.
    #[error(
        "model file {path} has SHA-256 {found}, but {expected_from} expects {expected}: the file is corrupt, \
         truncated or another model (set MODEL_SHA256 to the digest of the file you mean to run)"
    )]
    ChecksumMismatch {
        /// The model file.
        path: PathBuf,
        /// The digest it should have.
        expected: crate::model::ModelDigest,
        /// Who expects it: `MODEL_SHA256`, or the built-in digest of a named model.
        expected_from: String,
        /// The digest it has.
        found: crate::model::ModelDigest,
    },
    /// tract refused the model (parse, typing or optimisation failure).
    #[error("loading model {name}: {detail}")]
    Tract {
        /// The model's name or path.
        name: String,
        /// tract's error chain.
        detail: String,
    },
    /// The model loaded but does not look like a U²-Net-family model.
    #[error("model {name} has an unexpected shape: {detail}")]
    Shape {
        /// The model's name or path.
        name: String,
        /// What was wrong.
        detail: String,
    },
}

/// Anything that can go wrong while cutting out an image.
#[derive(Debug, thiserror::Error)]
pub enum CutoutError {
    /// The input image was refused; retrying will not help.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The model is missing or broken.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model failed while running.
    #[error("inference failed: {0}")]
    Inference(String),
    /// Encoding the output PNG failed.
    #[error("encoding PNG: {0}")]
    Encode(String),
}

impl CutoutError {
    /// True when the input itself is at fault (a bad or hostile image), so the job should
    /// fail permanently instead of being retried.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CutoutError::Image(_))
    }
}
