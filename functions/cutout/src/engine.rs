//! The engine: a loaded, optimised model plus rembg's pre- and post-processing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::{DynamicImage, GenericImageView, GrayImage, RgbImage, RgbaImage};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::decode::decode_image;
use crate::encode::{encode_mask_png, encode_rgba_png, PngCompression};
use crate::error::{CutoutError, ModelError};
use crate::limits::DecodeLimits;
use crate::model::{ModelDigest, ModelSpec, Preprocess};
use crate::postprocess::post_process_mask;
use crate::resample::resize_lanczos;
use crate::settings::EngineSettings;

type Plan = TypedSimplePlan;

/// How an [`Engine`] runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Threads for tract's matrix-multiplication kernels (the `multithread-mm` feature).
    /// `1` runs everything on the calling thread. Masks are identical whatever the count.
    pub threads: usize,
    /// Rewrite linear `Resize` ops as matrix products at load time (see the `rewrite`
    /// module): same masks, faster, especially with several threads. On by default;
    /// `CUTOUT_RESIZE_MATMUL=0` turns it off.
    pub resize_as_matmul: bool,
}

impl Default for EngineOptions {
    /// All available cores (a Lambda function gets up to 6 vCPUs with enough memory).
    fn default() -> Self {
        EngineOptions {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            resize_as_matmul: true,
        }
    }
}

impl EngineOptions {
    /// `threads` threads, everything else default.
    pub fn with_threads(threads: usize) -> EngineOptions {
        EngineOptions { threads, ..EngineOptions::default() }
    }
}

/// Per-call options for [`Engine::cut_out`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CutoutOptions {
    /// Apply rembg's `post_process_mask` (opening, blur, threshold → binary mask).
    pub post_process_mask: bool,
    /// Bounds for decoding untrusted input.
    pub limits: DecodeLimits,
}

/// The result of a cut-out: the mask and the photo with that mask as its alpha.
#[derive(Debug, Clone)]
pub struct Cutout {
    /// Width in pixels, after EXIF orientation.
    pub width: u32,
    /// Height in pixels, after EXIF orientation.
    pub height: u32,
    /// The 8-bit mask, exactly what rembg's `only_mask=True` returns.
    pub mask: GrayImage,
    /// The photo with straight alpha: RGB untouched, alpha = mask (× the photo's own
    /// alpha, if it had one). rembg instead premultiplies RGB by the mask, which darkens
    /// soft edges; straight alpha is what PNG and print expect.
    pub image: RgbaImage,
}

impl Cutout {
    /// The mask as an 8-bit grayscale PNG at 300 DPI.
    pub fn mask_png(&self, compression: PngCompression) -> Result<Vec<u8>, CutoutError> {
        encode_mask_png(&self.mask, compression)
    }

    /// The transparent cut-out as an RGBA PNG at 300 DPI.
    pub fn transparent_png(&self, compression: PngCompression) -> Result<Vec<u8>, CutoutError> {
        encode_rgba_png(&self.image, compression)
    }
}

/// A loaded model, ready to cut out any number of images.
///
/// Loading parses the ONNX file, fixes the input shape, keeps only output 0 and lets tract
/// optimise the graph — once (this is the cold-start cost, ~100 ms for u2netp). The engine
/// is `Send + Sync` and cheap to clone (the plan is behind an `Arc`): share one per process
/// and call it from as many threads as you like; each call allocates its own run state.
#[derive(Debug, Clone)]
pub struct Engine {
    plan: Arc<Plan>,
    pre: Preprocess,
    name: String,
    path: PathBuf,
    /// Output 0's spatial size (height, width).
    out_hw: (usize, usize),
    threads: usize,
    load_time: Duration,
    /// The digest the file was checked against before loading, and how long hashing took.
    verified: Option<(ModelDigest, Duration)>,
}

fn tract_err(name: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tract { name: name.to_string(), detail: format!("{e:#}") }
}

fn executor(threads: usize) -> tract_linalg::multithread::Executor {
    use tract_linalg::multithread::Executor;
    if threads <= 1 {
        return Executor::SingleThread;
    }
    // Build the pool ourselves so a failure degrades to one thread instead of panicking.
    match rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("cutout-mm-{i}")).build() {
        Ok(pool) => Executor::MultiThread(Arc::new(pool)),
        Err(_) => Executor::SingleThread,
    }
}

impl Engine {
    /// Loads `spec` with default options (all cores).
    pub fn load(spec: &ModelSpec) -> Result<Engine, ModelError> {
        Engine::load_with(spec, EngineOptions::default())
    }

    /// Loads the model `settings` name, run as they say (see [`EngineSettings`]), after
    /// checking the file's SHA-256 when a digest is expected
    /// ([`EngineSettings::expected_digest`]): a mismatch is [`ModelError::ChecksumMismatch`].
    pub fn from_settings(settings: &EngineSettings) -> Result<Engine, ModelError> {
        let spec = settings.model_spec()?;
        let path = spec.resolve_in(&settings.search_dirs())?;
        let checked = match settings.expected_digest(&spec) {
            Some((digest, from)) => {
                let started = Instant::now();
                digest.verify_file(&path, &from)?;
                Some((digest, started.elapsed()))
            }
            None => None,
        };
        let mut engine = Engine::load_file(&path, spec.known_name().map(|n| n.preprocess()), settings.options())?;
        engine.verified = checked;
        Ok(engine)
    }

    /// Resolves `spec` to a file and loads it.
    pub fn load_with(spec: &ModelSpec, options: EngineOptions) -> Result<Engine, ModelError> {
        let path = spec.resolve()?;
        Engine::load_file(&path, spec.known_name().map(|n| n.preprocess()), options)
    }

    /// Loads an ONNX file. `pre` fixes input size and normalisation; `None` derives them
    /// from the model's declared input size (1024 → IS-Net's, otherwise U²-Net's).
    pub fn load_file(path: &Path, pre: Option<Preprocess>, options: EngineOptions) -> Result<Engine, ModelError> {
        let started = Instant::now();
        let name =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        if !path.is_file() {
            return Err(ModelError::NotFound { path: path.to_path_buf(), hint: "check MODEL_PATH / --model".into() });
        }
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(|e| tract_err(&name, e))?;
        let pre = pre.unwrap_or_else(|| {
            let declared = model
                .input_fact(0)
                .ok()
                .and_then(|f| f.shape.dims().nth(2).cloned())
                .and_then(|d| d.concretize())
                .and_then(|d| d.to_usize().ok());
            match declared {
                Some(1024) => Preprocess::ISNET,
                Some(s) if s > 0 => Preprocess { size: s, ..Preprocess::U2NET },
                _ => Preprocess::U2NET,
            }
        });
        let s = pre.size;
        // A fixed input shape lets tract resolve every shape at load time and pick kernels.
        model.set_input_fact(0, f32::fact([1, 3, s, s]).into()).map_err(|e| tract_err(&name, e))?;
        // rembg reads only the first output (the fused map); dropping the six side outputs
        // before optimising lets tract prune the work that only they need.
        let first = *model
            .output_outlets()
            .map_err(|e| tract_err(&name, e))?
            .first()
            .ok_or_else(|| ModelError::Shape { name: name.clone(), detail: "the model has no outputs".into() })?;
        model.select_output_outlets(&[first]).map_err(|e| tract_err(&name, e))?;
        let mut typed = model.into_typed().and_then(|m| m.into_decluttered()).map_err(|e| tract_err(&name, e))?;
        if options.resize_as_matmul {
            crate::rewrite::linear_resize_as_matmul(&mut typed).map_err(|e| tract_err(&name, e))?;
        }
        let typed = typed.into_optimized().map_err(|e| tract_err(&name, e))?;
        let out_shape: Vec<usize> =
            typed.output_fact(0).map_err(|e| tract_err(&name, e))?.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(
                || ModelError::Shape { name: name.clone(), detail: "output 0 has no fixed shape".into() },
            )?;
        let out_hw = match out_shape.as_slice() {
            [1, c, h, w] if *c >= 1 && *h > 0 && *w > 0 => (*h, *w),
            [1, h, w] if *h > 0 && *w > 0 => (*h, *w),
            other => {
                return Err(ModelError::Shape { name, detail: format!("output 0 is {other:?}, expected [1, C, H, W]") })
            }
        };
        let run_options = RunOptions { executor: Some(executor(options.threads)), ..Default::default() };
        let plan = typed.into_runnable_with_options(&run_options).map_err(|e| tract_err(&name, e))?;
        Ok(Engine {
            plan,
            pre,
            name,
            path: path.to_path_buf(),
            out_hw,
            threads: options.threads.max(1),
            load_time: started.elapsed(),
            verified: None,
        })
    }

    /// The model's name (its file stem).
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// The model file this engine was loaded from.
    pub fn model_path(&self) -> &Path {
        &self.path
    }

    /// Input size and normalisation in use.
    pub fn preprocess(&self) -> Preprocess {
        self.pre
    }

    /// Threads given to tract's kernels.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How long loading and optimising took (the cold-start cost, besides hashing).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The SHA-256 the model file was verified against before loading, and how long
    /// hashing it took; `None` when no digest was expected.
    pub fn verified_sha256(&self) -> Option<(ModelDigest, Duration)> {
        self.verified
    }

    /// Steps 3–4 of the pipeline: Pillow-LANCZOS resize to the model's square input, divide
    /// by the resized image's maximum, normalise with mean/std, lay out as NCHW f32.
    ///
    /// Public so tests can compare the exact tensor with rembg's.
    pub fn input_tensor(&self, rgb: &RgbImage) -> Result<Vec<f32>, CutoutError> {
        let s = self.pre.size;
        let (w, h) = rgb.dimensions();
        let resized = resize_lanczos(rgb.as_raw(), w as usize, h as usize, 3, s, s)
            .ok_or(CutoutError::Image(crate::ImageError::ZeroSize { width: w, height: h }))?;
        // NumPy: im / max(np.max(im), 1e-6), in f64.
        let max = f64::from(resized.iter().copied().max().unwrap_or(0)).max(1e-6);
        let plane = s * s;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in resized.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let v = f64::from(px[c]) / max;
                data[c * plane + i] = ((v - self.pre.mean[c]) / self.pre.std[c]) as f32;
            }
        }
        Ok(data)
    }

    /// Runs the model on a prepared input tensor and returns output 0's first channel at the
    /// model's resolution, min–max normalised, ×255 and truncated to u8 (rembg's
    /// `(pred * 255).astype("uint8")`).
    pub fn run_model(&self, input: Vec<f32>) -> Result<GrayImage, CutoutError> {
        let s = self.pre.size;
        let tensor = Tensor::from_shape(&[1, 3, s, s], &input).map_err(|e| CutoutError::Inference(format!("{e:#}")))?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(|e| CutoutError::Inference(format!("{e:#}")))?;
        let out = outputs.first().ok_or_else(|| CutoutError::Inference("the model returned no output".into()))?;
        let all = out
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(|e| CutoutError::Inference(format!("{e:#}")))?;
        let (h, w) = self.out_hw;
        let pred =
            all.get(..h * w).ok_or_else(|| CutoutError::Inference("output 0 is smaller than expected".into()))?;
        GrayImage::from_raw(w as u32, h as u32, normalise_prediction(pred))
            .ok_or_else(|| CutoutError::Inference("output buffer size mismatch".into()))
    }

    /// The full-size mask for an RGB image: the model-resolution mask resized back to the
    /// image's size with Pillow's LANCZOS (step 5).
    pub fn mask(&self, rgb: &RgbImage) -> Result<GrayImage, CutoutError> {
        let small = self.run_model(self.input_tensor(rgb)?)?;
        let (w, h) = rgb.dimensions();
        let (sw, sh) = small.dimensions();
        let full = resize_lanczos(small.as_raw(), sw as usize, sh as usize, 1, w as usize, h as usize)
            .ok_or(CutoutError::Image(crate::ImageError::ZeroSize { width: w, height: h }))?;
        GrayImage::from_raw(w, h, full).ok_or_else(|| CutoutError::Inference("mask buffer size mismatch".into()))
    }

    /// Cuts out an already decoded (and oriented) image.
    ///
    /// Takes the image by value so an 8-bit RGB photo is not copied (memory peaks at about
    /// 9 bytes per pixel: RGB, mask, RGBA).
    pub fn cut_out_image(&self, img: DynamicImage, post_process: bool) -> Result<Cutout, CutoutError> {
        let (width, height) = img.dimensions();
        if width == 0 || height == 0 {
            return Err(crate::ImageError::ZeroSize { width, height }.into());
        }
        // The photo's own alpha, kept (1 byte per pixel) to combine with the mask.
        let source_alpha: Option<Vec<u8>> =
            img.color().has_alpha().then(|| img.to_luma_alpha8().pixels().map(|p| p.0[1]).collect());
        // rembg: img.convert("RGB") — alpha dropped (not composited), grey replicated.
        let rgb = img.into_rgb8();
        let mut mask = self.mask(&rgb)?;
        if post_process {
            mask = post_process_mask(&mask);
        }
        let image = apply_alpha(&rgb, source_alpha.as_deref(), &mask);
        Ok(Cutout { width, height, mask, image })
    }

    /// The whole path for untrusted bytes: bounded decode (+ EXIF orientation), then
    /// [`Engine::cut_out_image`]. Errors from the input are [`CutoutError::Image`].
    pub fn cut_out(&self, bytes: &[u8], options: &CutoutOptions) -> Result<Cutout, CutoutError> {
        let img = decode_image(bytes, &options.limits)?;
        self.cut_out_image(img, options.post_process_mask)
    }
}

/// rembg's post-inference normalisation, in f32 as NumPy does it on an f32 array:
/// `(p - min) / (max - min)`, `× 255`, truncated to u8. A constant map (max = min) gives
/// NaN in NumPy, which casts to 0; it gives an all-zero mask here too.
fn normalise_prediction(pred: &[f32]) -> Vec<u8> {
    let (mut mi, mut ma) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in pred {
        mi = mi.min(v);
        ma = ma.max(v);
    }
    let range = ma - mi;
    if range.is_nan() || range <= 0.0 || range.is_infinite() {
        return vec![0; pred.len()];
    }
    pred.iter().map(|&v| (((v - mi) / range) * 255.0) as u8).collect()
}

/// Straight alpha: keep the RGB, alpha = mask, multiplied by the source's own alpha when it
/// has one (as rembg's composite would, so already-transparent areas stay transparent).
fn apply_alpha(rgb: &RgbImage, source_alpha: Option<&[u8]>, mask: &GrayImage) -> RgbaImage {
    let (w, h) = rgb.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 4);
    for (i, (px, m)) in rgb.pixels().zip(mask.pixels()).enumerate() {
        let mut a = m.0[0];
        if let Some(sa) = source_alpha {
            let s = sa.get(i).copied().unwrap_or(255);
            a = ((u16::from(a) * u16::from(s) + 127) / 255) as u8;
        }
        out.extend_from_slice(&[px.0[0], px.0[1], px.0[2], a]);
    }
    RgbaImage::from_raw(w, h, out).unwrap_or_else(|| RgbaImage::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_can_be_shared_across_threads() {
        assert_send_sync::<Engine>();
    }

    #[test]
    fn prediction_is_min_max_normalised_and_truncated() {
        assert_eq!(normalise_prediction(&[0.2, 0.6, 1.0]), vec![0, 127, 255]);
        assert_eq!(normalise_prediction(&[0.5, 0.5]), vec![0, 0]);
        assert_eq!(normalise_prediction(&[]), Vec::<u8>::new());
    }

    #[test]
    fn alpha_is_straight_and_respects_source_alpha() {
        let rgb = RgbImage::from_raw(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap();
        let mask = GrayImage::from_raw(2, 1, vec![128, 255]).unwrap();
        let out = apply_alpha(&rgb, Some(&[255, 0]), &mask);
        assert_eq!(out.as_raw(), &vec![10, 20, 30, 128, 40, 50, 60, 0]);
    }
}
