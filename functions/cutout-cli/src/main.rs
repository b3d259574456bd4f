//! `cutout`: rembg-style command line for the cut-out engine (library `cutout`, crate
//! `stolentee-cutout`). It lives in its own crate so clap and indicatif stay out of the library.
//!
//! ```text
//! cutout i INPUT OUTPUT        one file ("-" for stdin/stdout)
//! cutout p INDIR OUTDIR        every image in a folder → OUTDIR/<stem>.out.png
//!   --model NAME|PATH          u2netp (default), u2net, silueta, isnet-general-use, or a file
//!   --only-mask                write the 8-bit mask as a grayscale PNG
//!   --post-process-mask        rembg's opening + blur + threshold
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use cutout::{CutoutOptions, DecodeLimits, Engine, EngineSettings, ModelSpec, PngCompression};

#[derive(Parser, Debug)]
#[command(name = "cutout", version, about = "Remove image backgrounds (rembg-compatible U²-Net on tract)")]
struct Cli {
    /// Model: u2netp, u2net, silueta, isnet-general-use, or a path to an .onnx file.
    /// Defaults to $MODEL_PATH, then $CUTOUT_MODEL, then u2netp.
    #[arg(short, long, global = true, value_name = "NAME|PATH")]
    model: Option<String>,
    /// Write only the mask (8-bit grayscale PNG) instead of the transparent cut-out.
    #[arg(long = "only-mask", visible_alias = "om", global = true)]
    only_mask: bool,
    /// Apply rembg's post_process_mask (binary, smoothed mask).
    #[arg(long = "post-process-mask", visible_alias = "ppm", global = true)]
    post_process_mask: bool,
    /// Threads for the model's matrix kernels (default: $CUTOUT_THREADS or all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// PNG compression level.
    #[arg(long, global = true, value_enum, default_value_t = Compression::Fast)]
    compression: Compression,
    /// Largest width or height to decode (default 12000). The worker's upload rules are
    /// `--max-side 10000 --max-pixels 50000000`: give both to reproduce its limits.
    #[arg(long, global = true)]
    max_side: Option<u32>,
    /// Largest width × height to decode (default 40000000); the decoder's memory budget
    /// follows from it.
    #[arg(long, global = true)]
    max_pixels: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cut out one image.
    I {
        /// Input image ("-" reads stdin).
        input: PathBuf,
        /// Output PNG ("-" writes stdout).
        output: PathBuf,
    },
    /// Cut out every image in a folder (not recursive); writes OUTDIR/<stem>.out.png.
    P {
        /// Folder of images.
        input_dir: PathBuf,
        /// Folder for the results (created if missing).
        output_dir: PathBuf,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Compression {
    Fast,
    Balanced,
    High,
}

impl From<Compression> for PngCompression {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Fast => PngCompression::Fast,
            Compression::Balanced => PngCompression::Balanced,
            Compression::High => PngCompression::High,
        }
    }
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"];

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("cutout: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The engine settings from the environment, read once (`MODEL_PATH`, `CUTOUT_MODEL`,
/// `MODELS_DIR`, `U2NET_HOME`, `CUTOUT_THREADS`, `CUTOUT_RESIZE_MATMUL`); flags override them.
fn settings() -> Result<EngineSettings, String> {
    config::Env::from_process().parse().map_err(|e| e.to_string())
}

fn model_spec(cli: &Cli) -> Result<ModelSpec, String> {
    match &cli.model {
        Some(m) => m.parse::<ModelSpec>().map_err(|e| e.to_string()),
        None => settings()?.model_spec().map_err(|e| e.to_string()),
    }
}

fn load_engine(cli: &Cli, spec: &ModelSpec) -> Result<Engine, String> {
    let settings = settings()?;
    let mut options = settings.options();
    if let Some(t) = cli.threads.filter(|&t| t > 0) {
        options.threads = t;
    }
    cutout::init_threads(options.threads);
    let path = spec.resolve_in(&settings.search_dirs()).map_err(|e| e.to_string())?;
    Engine::load_file(&path, spec.known_name().map(|n| n.preprocess()), options).map_err(|e| e.to_string())
}

fn process(engine: &Engine, cli: &Cli, bytes: &[u8]) -> Result<Vec<u8>, cutout::CutoutError> {
    let defaults = DecodeLimits::default();
    let limits = match (cli.max_side, cli.max_pixels) {
        (None, None) => defaults,
        (side, pixels) => DecodeLimits::admitting(
            side.unwrap_or(defaults.max_side),
            pixels.unwrap_or(defaults.max_pixels),
            defaults.formats,
        ),
    };
    let options = CutoutOptions { post_process_mask: cli.post_process_mask, limits };
    let cut = engine.cut_out(bytes, &options)?;
    if cli.only_mask {
        cut.mask_png(cli.compression.into())
    } else {
        cut.transparent_png(cli.compression.into())
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    // A wrong model name is reported before any file is touched.
    let spec = model_spec(cli)?;
    match &cli.command {
        Command::I { input, output } => {
            let bytes = read_input(input)?;
            let engine = load_engine(cli, &spec)?;
            let png = process(&engine, cli, &bytes).map_err(|e| format!("{}: {e}", input.display()))?;
            write_output(output, &png)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::P { input_dir, output_dir } => batch(cli, &spec, input_dir, output_dir),
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("reading stdin: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
    }
}

fn write_output(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|_| out.flush()).map_err(|e| format!("writing stdout: {e}"))
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

fn batch(cli: &Cli, spec: &ModelSpec, input_dir: &Path, output_dir: &Path) -> Result<ExitCode, String> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(input_dir)
        .map_err(|e| format!("reading {}: {e}", input_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    inputs.sort();
    std::fs::create_dir_all(output_dir).map_err(|e| format!("creating {}: {e}", output_dir.display()))?;
    let engine = load_engine(cli, spec)?;

    let bar = indicatif::ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut failures = 0usize;
    for input in &inputs {
        let name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        bar.set_message(name.clone());
        let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.clone());
        let output = output_dir.join(format!("{stem}.out.png"));
        let result = read_input(input)
            .and_then(|bytes| process(&engine, cli, &bytes).map_err(|e| e.to_string()))
            .and_then(|png| write_output(&output, &png));
        if let Err(e) = result {
            failures += 1;
            bar.suspend(|| eprintln!("cutout: {name}: {e}"));
        }
        bar.inc(1);
    }
    bar.finish_with_message(format!(
        "{} done, {failures} failed in {:.1?}",
        inputs.len() - failures,
        started.elapsed()
    ));
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
