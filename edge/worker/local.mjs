// Runs the built Worker (edge/worker/build, from scripts/worker-build.sh) in workerd, the
// Workers runtime, through Miniflare: the bindings come from edge/wrangler.toml, each one
// local — the R2 bucket ASSETS, the RateLimiter and HealthBoard Durable Objects, the Cache
// API — and kept under EDGE_WORKERD_STATE. `make dev` and the integration tests start it
// with the pinned Node (scripts/edge-tools.sh):
//
//   node edge/worker/local.mjs
//
// Environment:
//   EDGE_WORKERD_BIND          where the Worker listens (default 127.0.0.1:8787)
//   EDGE_WORKERD_SECOND_BIND   optional: a second isolate of the same Worker there, sharing
//                              the Durable Objects, the bucket and the cache (as two
//                              isolates do on Cloudflare)
//   EDGE_WORKERD_STATE         directory of the local R2, Durable Object and cache data
//                              (default .dev/workerd; kept across restarts)
//   EDGE_WORKERD_OBJECTS       optional: a local object store directory (the API's
//                              LOCAL_OBJECTS_DIR: data/<key> + meta/<key>), mirrored into the
//                              R2 bucket every second, so what the API stores (cut-out
//                              results included) is served from R2
//   EDGE_WORKERD_CRON_SECS     fire the Cron Trigger every N s (default 0: never; the
//                              tests fire it with POST /cdn-cgi/handler/scheduled)
//   EDGE_*, CF_*               override the [vars] of wrangler.toml (and act as secrets)
//
// On start it prints `ready http://HOST:PORT` on stdout; SIGINT/SIGTERM stop workerd.

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const edgeDir = resolve(here, "..");
const root = resolve(edgeDir, "..");

function fail(message) {
  console.error(`workerd-edge: error: ${message}`);
  process.exit(1);
}

// Miniflare and wrangler as scripts/edge-tools.sh pinned them (EDGE_TOOLS_DIR, default .tools).
const tools = resolve(process.env.EDGE_TOOLS_DIR ?? join(root, ".tools"), "node");
if (!existsSync(join(tools, "node_modules", "miniflare"))) {
  fail(`${tools}/node_modules has no miniflare: run scripts/edge-tools.sh run`);
}
// The Worker's vars from this environment. wrangler must not take CF_* as its own account
// settings, so they leave the environment before it loads.
const overrides = {};
for (const [key, value] of Object.entries(process.env)) {
  if (key.startsWith("EDGE_WORKERD_")) continue;
  if (key.startsWith("EDGE_") || key.startsWith("CF_")) overrides[key] = value;
  if (key.startsWith("CF_")) delete process.env[key];
}
const require = createRequire(join(tools, "package.json"));
const { Log, LogLevel, Miniflare } = require("miniflare");
const { unstable_getMiniflareWorkerOptions } = require("wrangler");

function hostPort(raw, name) {
  const match = /^([^:]+):(\d+)$/.exec(raw);
  if (!match) fail(`${name}=${raw} is not HOST:PORT`);
  return { host: match[1], port: Number(match[2]) };
}

const bind = hostPort(process.env.EDGE_WORKERD_BIND ?? "127.0.0.1:8787", "EDGE_WORKERD_BIND");
const second = process.env.EDGE_WORKERD_SECOND_BIND
  ? hostPort(process.env.EDGE_WORKERD_SECOND_BIND, "EDGE_WORKERD_SECOND_BIND")
  : null;
const state = resolve(process.env.EDGE_WORKERD_STATE ?? join(root, ".dev", "workerd"));
const objects = process.env.EDGE_WORKERD_OBJECTS ? resolve(process.env.EDGE_WORKERD_OBJECTS) : null;
const cronSecs = Number(process.env.EDGE_WORKERD_CRON_SECS ?? "0");
if (!Number.isFinite(cronSecs) || cronSecs < 0) fail(`EDGE_WORKERD_CRON_SECS=${process.env.EDGE_WORKERD_CRON_SECS} is not a number of seconds`);

const build = join(edgeDir, "worker", "build");
const shim = join(build, "worker", "shim.mjs");
if (!existsSync(shim)) fail(`${relative(root, shim)} is missing: build the Worker first (scripts/worker-build.sh)`);

// Bindings, compatibility date and flags exactly as wrangler.toml declares them.
const fromToml = unstable_getMiniflareWorkerOptions(join(edgeDir, "wrangler.toml"));
const options = fromToml.workerOptions;
const vars = { ...(options.bindings ?? {}), ...overrides };

function worker(name, extra) {
  return {
    ...options,
    name,
    bindings: vars,
    modules: true,
    scriptPath: shim,
    modulesRoot: build,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    ...extra,
  };
}

const primary = "stolentee-edge";
const workers = [worker(primary, {})];
if (second) {
  // The same script as another isolate; its Durable Object bindings point at the primary's
  // classes, so both reach the same objects.
  const durableObjects = Object.fromEntries(
    Object.entries(options.durableObjects ?? {}).map(([binding, target]) => [
      binding,
      { className: typeof target === "string" ? target : target.className, scriptName: primary },
    ]),
  );
  workers.push(worker(`${primary}-2`, { durableObjects, unsafeDirectSockets: [{ host: second.host, port: second.port }] }));
}

const mf = new Miniflare({
  host: bind.host,
  port: bind.port,
  workers,
  unsafeTriggerHandlers: true,
  defaultPersistRoot: state,
  r2Persist: join(state, "r2"),
  durableObjectsPersist: join(state, "do"),
  cachePersist: join(state, "cache"),
  log: new Log(process.env.EDGE_WORKERD_LOG === "debug" ? LogLevel.DEBUG : LogLevel.WARN),
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(code);
  }
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

try {
  const url = await mf.ready;
  if (objects) await mirrorForever(objects);
  if (cronSecs > 0) {
    setInterval(async () => {
      try {
        const w = await mf.getWorker(primary);
        await w.scheduled({ cron: "* * * * *" });
      } catch (e) {
        console.error(`workerd-edge: the Cron Trigger failed: ${e}`);
      }
    }, cronSecs * 1000);
  }
  console.log(`ready ${url.origin}`);
  if (second) console.log(`ready http://${second.host}:${second.port}`);
} catch (e) {
  console.error(`workerd-edge: error: workerd did not start: ${e?.stack ?? e}`);
  await stop(1);
}

// --- the object store mirror ---------------------------------------------------------------

function* files(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

async function mirrorForever(dir) {
  const bucketBinding = Object.keys(options.r2Buckets ?? {})[0];
  if (!bucketBinding) fail("wrangler.toml declares no R2 bucket to mirror the object store into");
  const bucket = await mf.getR2Bucket(bucketBinding, primary);
  const seen = new Map(); // key -> "size:mtime"
  const data = join(dir, "data");
  const once = async () => {
    for (const path of files(data)) {
      const key = relative(data, path).split("\\").join("/");
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      const stamp = `${st.size}:${st.mtimeMs}`;
      if (seen.get(key) === stamp) continue;
      let contentType;
      try {
        contentType = JSON.parse(readFileSync(join(dir, "meta", key), "utf8")).content_type ?? undefined;
      } catch {
        contentType = undefined;
      }
      const bytes = readFileSync(path);
      // An ArrayBuffer of its own: Miniflare's proxy refuses a view into Node's shared pool.
      const body = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      await bucket.put(key, body, { httpMetadata: contentType ? { contentType } : undefined });
      seen.set(key, stamp);
    }
  };
  await once();
  const tick = async () => {
    try {
      await once();
    } catch (e) {
      console.error(`workerd-edge: mirroring ${dir} into R2 failed: ${e}`);
    }
    if (!stopping) setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}
