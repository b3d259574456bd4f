"""rembg side of scripts/bench-cutout.sh: same measurements as examples/bench.rs.

Usage: python rembg_bench.py MODELS_DIR RUNS THREADS IMG [IMG ...]

Prints one JSON object: load_ms (new_session("u2netp"), model file cached), per image the
medians of model_ms (inner_session.run on a prepared input) and e2e_ms (bytes in →
remove() → PNG bytes out, rembg's own path), batch_ips, peak_rss_mb (ru_maxrss).
"""

import json
import os
import resource
import statistics
import sys
import time


def main() -> int:
    models_dir, runs, threads, *images = sys.argv[1:]
    runs, threads = int(runs), int(threads)
    os.environ["U2NET_HOME"] = os.path.abspath(models_dir)

    import onnxruntime as ort
    from PIL import Image
    from rembg import new_session, remove

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    t = time.perf_counter()
    session = new_session("u2netp", sess_opts=opts)
    load_ms = (time.perf_counter() - t) * 1e3

    rows = []
    inputs = [(p, open(p, "rb").read()) for p in images]
    for path, data in inputs:
        img = Image.open(path)
        feed = session.normalize(
            img, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (320, 320)
        )
        session.inner_session.run(None, feed)
        model = []
        for _ in range(runs):
            t = time.perf_counter()
            session.inner_session.run(None, feed)
            model.append((time.perf_counter() - t) * 1e3)
        remove(data, session=session)
        e2e = []
        for _ in range(runs):
            t = time.perf_counter()
            remove(data, session=session)
            e2e.append((time.perf_counter() - t) * 1e3)
        rows.append(
            {
                "image": os.path.basename(path),
                "width": img.width,
                "height": img.height,
                "model_ms": round(statistics.median(model), 1),
                "e2e_ms": round(statistics.median(e2e), 1),
            }
        )
    t = time.perf_counter()
    for _, data in inputs:
        remove(data, session=session)
    batch_ips = len(inputs) / (time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "engine": "rembg",
                "threads": threads,
                "load_ms": round(load_ms, 1),
                "batch_ips": round(batch_ips, 2),
                "peak_rss_mb": round(peak),
                "images": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
