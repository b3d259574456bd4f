//! Lambda cold start, measured locally: a small Lambda Runtime API (the HTTP interface the
//! `lambda_runtime` crate polls) serves one event to a freshly started function binary, and
//! the clock runs from process start to the first `next` poll (init: configuration, pools,
//! model) and to the posted response (the first event handled). Nothing is mocked inside the
//! function: it is the release binary with a Lambda environment.
//!
//! The emulator implements what a function uses: `GET /2018-06-01/runtime/invocation/next`
//! (the first call gets the event, later calls wait until the process is stopped),
//! `POST …/invocation/{id}/response`, `…/invocation/{id}/error` and `…/runtime/init/error`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::say;
use crate::stats::median_by;

const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000001";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A name for the report (`api`, `remove-bg`).
    #[arg(long)]
    pub name: String,
    /// The function's bootstrap binary.
    #[arg(long)]
    pub binary: PathBuf,
    /// The event JSON served to the first `next` poll.
    #[arg(long)]
    pub event: PathBuf,
    /// Cold starts to run; the median is reported.
    #[arg(long, env = "RUNS", default_value_t = 5)]
    pub runs: usize,
    /// `KEY=VALUE` for the function's environment (on top of the Lambda variables).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub envs: Vec<String>,
    /// Where the JSON result goes.
    #[arg(long)]
    pub out: PathBuf,
    /// Run the function under this command (e.g. a CPU limit: `systemd-run --scope -p CPUQuota=29%`).
    #[arg(long, value_delimiter = ' ', allow_hyphen_values = true)]
    pub wrapper: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct ColdStart {
    /// Process start to the first `next` poll: everything the function does before it can
    /// take an event.
    pub init_ms: f64,
    /// Process start to the first response posted.
    pub first_response_ms: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Result {
    pub name: String,
    pub binary_bytes: u64,
    pub runs: Vec<ColdStart>,
    pub median: ColdStart,
    pub wrapper: Vec<String>,
}

#[derive(Default)]
struct Timeline {
    started: Option<Instant>,
    first_next: Option<Instant>,
    responded: Option<Instant>,
    error: Option<String>,
}

async fn handle(req: Request<Incoming>, event: Bytes, tl: Arc<Mutex<Timeline>>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let ok =
        |status: StatusCode, body: Bytes| Response::builder().status(status).body(Full::new(body)).expect("static");
    if path == "/2018-06-01/runtime/invocation/next" {
        let first = {
            let mut t = tl.lock().expect("timeline");
            let first = t.first_next.is_none();
            if first {
                t.first_next = Some(Instant::now());
            }
            first
        };
        if !first {
            // Lambda freezes the process here; the measurement is over.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let deadline = std::time::SystemTime::now() + Duration::from_secs(60);
        let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", REQUEST_ID)
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:cold-start")
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000001")
            .body(Full::new(event))
            .expect("static parts");
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut t = tl.lock().expect("timeline");
    if path.ends_with("/response") {
        t.responded = Some(Instant::now());
        return ok(StatusCode::ACCEPTED, Bytes::new());
    }
    if path.ends_with("/error") {
        t.error = Some(format!("{path}: {}", String::from_utf8_lossy(&body)));
        return ok(StatusCode::ACCEPTED, Bytes::new());
    }
    ok(StatusCode::NOT_FOUND, Bytes::new())
}

async fn one_run(args: &Args, event: Bytes) -> anyhow::Result<ColdStart> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the runtime API")?;
    let addr = listener.local_addr()?;
    let tl = Arc::new(Mutex::new(Timeline::default()));
    let server = {
        let tl = Arc::clone(&tl);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (tl, event) = (Arc::clone(&tl), event.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (tl, event) = (Arc::clone(&tl), event.clone());
                        async move { Ok::<_, Infallible>(handle(req, event, tl).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };

    let (program, wrapper_args) = match args.wrapper.split_first() {
        Some((program, rest)) => (
            PathBuf::from(program),
            rest.iter().map(Into::into).chain([args.binary.clone().into_os_string()]).collect::<Vec<_>>(),
        ),
        None => (args.binary.clone(), Vec::new()),
    };
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&wrapper_args)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &args.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "cold-start")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for kv in &args.envs {
        let (k, v) = kv.split_once('=').with_context(|| format!("--env {kv}: expected KEY=VALUE"))?;
        cmd.env(k, v);
    }
    tl.lock().expect("timeline").started = Some(Instant::now());
    let mut child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let t = tl.lock().expect("timeline");
            if let Some(e) = &t.error {
                bail!("{} reported an error: {e}", args.name);
            }
            if t.responded.is_some() {
                break;
            }
        }
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            bail!("{} exited ({status}) before answering: {}", args.name, stderr.trim());
        }
        if Instant::now() > deadline {
            child.kill().ok();
            bail!("{} did not answer within 60 s", args.name);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().ok();
    child.wait().ok();
    server.abort();
    let t = tl.lock().expect("timeline");
    let (Some(started), Some(first_next), Some(responded)) = (t.started, t.first_next, t.responded) else {
        bail!("incomplete timeline");
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(ColdStart { init_ms: ms(first_next - started), first_response_ms: ms(responded - started) })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let event = Bytes::from(std::fs::read(&args.event).with_context(|| format!("reading {}", args.event.display()))?);
    let binary_bytes = std::fs::metadata(&args.binary).with_context(|| format!("{}", args.binary.display()))?.len();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut runs = Vec::with_capacity(args.runs);
    for i in 0..args.runs.max(1) {
        let run = rt.block_on(one_run(&args, event.clone()))?;
        say(
            "cold-start",
            format!(
                "{} run {}: init {:.1} ms, first response {:.1} ms",
                args.name,
                i + 1,
                run.init_ms,
                run.first_response_ms
            ),
        );
        runs.push(run);
    }
    let median = ColdStart {
        init_ms: median_by(&runs, |r| r.init_ms).map_or(0.0, |r| r.init_ms),
        first_response_ms: median_by(&runs, |r| r.first_response_ms).map_or(0.0, |r| r.first_response_ms),
    };
    let result = Result { name: args.name.clone(), binary_bytes, runs, median, wrapper: args.wrapper.clone() };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    say(
        "cold-start",
        format!(
            "{}: median init {:.1} ms, first response {:.1} ms",
            args.name, median.init_ms, median.first_response_ms
        ),
    );
    Ok(())
}
