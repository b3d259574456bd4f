"""Run rembg itself on scikit-image's sample photos, for the parity test (tests/parity.rs).

Usage: python rembg_masks.py OUT_DIR MODELS_DIR NAME [NAME ...]

For each NAME (a file in skimage/data without extension, e.g. "astronaut") and each case
(a PNG is one case; a JPEG is two: the raw file, and its pixels decoded by Pillow and stored
as PNG, which separates decoder differences from pipeline differences) writes
  OUT_DIR/LABEL.mask.png    rembg.remove(bytes, session=u2netp, only_mask=True)
  OUT_DIR/LABEL.pp.png      the same with post_process_mask=True
  OUT_DIR/LABEL.in.png      the model's input image: exif_transpose → convert("RGB") →
                            resize((320, 320), LANCZOS), i.e. what rembg's normalize() sees
and prints one tab-separated line per case: LABEL, source path, output base path, seconds
per rembg call.
U2NET_HOME is set to MODELS_DIR so rembg finds u2netp.onnx there and downloads nothing.
"""

import io
import os
import sys
import time


def main() -> int:
    out_dir, models_dir, *names = sys.argv[1:]
    os.environ["U2NET_HOME"] = os.path.abspath(models_dir)
    # rembg must never reach the network: the file has to be there already.
    if not os.path.isfile(os.path.join(models_dir, "u2netp.onnx")):
        print(f"u2netp.onnx not found in {models_dir}", file=sys.stderr)
        return 2

    import skimage.data
    from PIL import Image, ImageOps
    from rembg import new_session, remove

    data_dir = os.path.dirname(skimage.data.__file__)
    session = new_session("u2netp")
    os.makedirs(out_dir, exist_ok=True)

    def run_case(label: str, src: str) -> None:
        data = open(src, "rb").read()
        t0 = time.perf_counter()
        mask = remove(data, session=session, only_mask=True)
        dt = time.perf_counter() - t0
        base = os.path.join(out_dir, label)
        open(base + ".mask.png", "wb").write(mask)
        pp = remove(data, session=session, only_mask=True, post_process_mask=True)
        open(base + ".pp.png", "wb").write(pp)
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        img.convert("RGB").resize((320, 320), Image.Resampling.LANCZOS).save(base + ".in.png")
        print(f"{label}\t{src}\t{base}\t{dt:.4f}", flush=True)

    for name in names:
        src = next(
            (
                os.path.join(data_dir, name + ext)
                for ext in (".png", ".jpg", ".jpeg")
                if os.path.isfile(os.path.join(data_dir, name + ext))
            ),
            None,
        )
        if src is None:
            print(f"no sample photo named {name} in {data_dir}", file=sys.stderr)
            return 2
        if src.endswith(".png"):
            run_case(name, src)
        else:
            # The raw file tests our JPEG decoding against Pillow's; the same pixels, decoded
            # once by Pillow and stored losslessly, test the rest of the pipeline on its own.
            run_case(name + ".jpg", src)
            decoded = os.path.join(out_dir, name + ".pillow-decoded.png")
            ImageOps.exif_transpose(Image.open(src)).save(decoded)
            run_case(name + ".decoded", decoded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
