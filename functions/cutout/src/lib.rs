//! # Stolen Tee cut-out engine
//!
//! Removes the background from a customer's photo the way [rembg] does — same model files,
//! same pre- and post-processing, so the same input gives the same mask — but in Rust, on
//! [tract], with no Python, no onnxruntime and no web stack. The `remove-bg` queue worker
//! and the `cutout` CLI (crate `stolentee-cutout-cli`) are its two users.
//!
//! ```no_run
//! use cutout::{CutoutOptions, Engine, ModelSpec, PngCompression};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! cutout::init_threads(2);                        // optional; see "Threads" below
//! let engine = Engine::load(&ModelSpec::default())?;   // u2netp, once per process
//! let bytes = std::fs::read("photo.jpg")?;
//! let cut = engine.cut_out(&bytes, &CutoutOptions::default())?;
//! let png = cut.transparent_png(PngCompression::Fast)?;   // RGBA, 300 DPI
//! let mask = cut.mask_png(PngCompression::Fast)?;         // 8-bit grey, 300 DPI
//! # let _ = (png, mask); Ok(()) }
//! ```
//!
//! ## The pipeline, step by step (and why)
//!
//! rembg 2.0.86's default path (`remove(data, session=new_session("u2netp"))`, no alpha
//! matting, no post-processing) is the reference. Each step below is reproduced exactly,
//! because each one moves the mask measurably if done differently.
//!
//! 0. **Bounded decode** ([`decode_image`]). Not a rembg step but the first thing we do with
//!    untrusted bytes: format sniffed from content, header read, dimensions checked against
//!    [`DecodeLimits`] *before* any pixel buffer exists, the `image` crate's allocation
//!    limits kept on during decoding. Hostile files fail fast with a typed [`ImageError`].
//! 1. **EXIF orientation** — rembg calls `ImageOps.exif_transpose`; a phone photo shot
//!    upright but stored sideways must be cut out (and returned) upright.
//! 2. **To RGB** — Pillow's `convert("RGB")`: an alpha channel is *dropped*, not composited
//!    over anything; grey is copied to the three channels.
//! 3. **Resize to the model's square input** (320×320 for U²-Net models, 1024×1024 for
//!    IS-Net), aspect ratio not kept, with a faithful port of **Pillow's LANCZOS** resampler
//!    ([`resize_lanczos`]): separable, a = 3, support widened when shrinking, 22-bit
//!    fixed-point weights, rounding to u8 between the passes. A "Lanczos3" from another
//!    library is a different filter and measurably moves the masks (IoU 0.88–0.97).
//! 4. **Normalise** — divide by the resized image's *maximum* value (not 255) in f64, subtract
//!    the mean and divide by the std per channel (ImageNet statistics for U²-Net models;
//!    mean 0.5 and std 1.0 for IS-Net, see [`Preprocess`]), lay out NCHW, cast to f32.
//! 5. **Run the model, keep output 0** — U²-Net models emit seven sigmoid maps; rembg reads
//!    the first (the fused one). The other six are pruned from the graph at load time.
//! 6. **Min–max normalise** the map (f32), multiply by 255 and **truncate** to u8.
//! 7. **Resize back** to the photo's size with Pillow's LANCZOS again. This is the mask.
//! 8. *(optional)* **`post_process_mask`** ([`post_process_mask`]) — rembg's opening + Gaussian
//!    blur + threshold, for a hard-edged binary mask.
//! 9. **Apply the mask as alpha** to the RGB photo. Deliberate difference from rembg: rembg
//!    composites onto transparent black, which premultiplies RGB by the mask and leaves dark
//!    fringes on soft edges; we keep the RGB and set straight alpha, as PNG (and the print
//!    shop) expects. Masks are identical either way.
//! 10. **Encode PNG** with a pHYs chunk saying **300 DPI** ([`PRINT_DPI`]), fast compression
//!     by default ([`PngCompression`]).
//!
//! ## Models
//!
//! [`ModelSpec`] names a model (`u2netp` — the default —, `u2net`, `silueta`,
//! `isnet-general-use`) or a file path. Named models are looked up as `<name>.onnx` in
//! `$MODELS_DIR`, `$U2NET_HOME`, `./models`, the repository's `models/`, `~/.u2net`;
//! `MODEL_PATH` overrides everything. `scripts/fetch-model.sh` downloads `u2netp.onnx` with
//! an md5 check. Weights are never committed.
//!
//! [`Engine::from_settings`] checks the file's SHA-256 before loading it: against
//! `MODEL_SHA256` when set, otherwise against the built-in digest of a named model whose
//! file is known ([`ModelName::sha256`]; u2netp), so a corrupt or wrong file in a deployment
//! stops start-up with both digests named.
//!
//! Loading ([`Engine::load`]) fixes the input shape, keeps output 0 only and optimises the
//! graph once; the resulting plan is immutable, `Send + Sync`, and shared by every call.
//!
//! ## Threads and speed
//!
//! tract runs single-threaded unless its `multithread-mm` feature (enabled here) is given an
//! executor. Each [`Engine`] gets its own rayon pool of [`EngineOptions::threads`] threads
//! (default: all cores; `CUTOUT_THREADS` overrides). [`init_threads`] also sets tract's
//! *global* default executor, for any tract work outside an engine. Thread count changes
//! speed only, never the mask.
//!
//! Levers applied at load time, all mask-preserving:
//! * a fixed input shape (1×3×S×S), so tract resolves every shape and picks kernels once;
//! * only output 0 kept, so the work feeding the six side outputs is pruned;
//! * **linear `Resize` → two matrix products** ([`EngineOptions::resize_as_matmul`], on by
//!   default, `CUTOUT_RESIZE_MATMUL=0` to disable): tract's `Resize` is a scalar,
//!   single-threaded loop (~19 % of u2netp's time on one thread); as constant
//!   interpolation matrices it runs on the multithreaded matmul kernels.
//!
//! Output PNGs use fast compression by default (12 ms instead of 360 ms for a 1411² cut-out,
//! ~20 % larger files).
//!
//! [rembg]: https://github.com/danielgatis/rembg
//! [tract]: https://github.com/sonos/tract

#![warn(missing_docs)]

mod decode;
mod encode;
mod engine;
mod error;
mod limits;
mod model;
mod postprocess;
mod resample;
mod rewrite;
mod settings;

pub use decode::{decode_image, probe, ImageInfo};
pub use encode::{dpi_to_ppm, encode_mask_png, encode_rgba_png, PngCompression, PRINT_DPI};
pub use engine::{Cutout, CutoutOptions, Engine, EngineOptions};
pub use error::{CutoutError, ImageError, ModelError};
pub use limits::{DecodeLimits, InputFormat, InputFormats};
pub use model::{default_search_dirs, InvalidDigest, ModelDigest, ModelName, ModelSpec, Preprocess};
pub use postprocess::post_process_mask;
pub use resample::resize_lanczos;
pub use settings::EngineSettings;

/// Sets tract's process-wide default executor to a pool of `threads` threads (1 = single
/// thread). Call it once at start-up. Engines carry their own pool as well (see
/// [`EngineOptions`]), so this only matters for tract work done outside an [`Engine`].
pub fn init_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
        return;
    }
    if let Ok(pool) =
        rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("tract-default-{i}")).build()
    {
        set_default_executor(Executor::MultiThread(std::sync::Arc::new(pool)));
    }
}
