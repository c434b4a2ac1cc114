"""Images decoded under a pixel budget: the header first, JPEG reduced while decoding, other
formats over the budget refused undecoded, Pillow's decompression-bomb checks as one-line
failures; and a detection job on 13000 x 13000 images in a real subprocess, its peak memory
measured."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
from PIL import Image, ImageDraw

from totask_manifest._errors import UsageError
from totask_manifest._imaging import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLarge,
    ImageUnreadable,
    check_budget,
    class_colors,
    decode_image,
    decode_rgb,
    decoded_pixels,
    mask_png,
    read_info,
)

# pytest resets warning filters per test; the package's own filter holds in the CLI (asserted below)
pytestmark = [pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
              pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")]

BIG = 13000
PEAK_RSS_LIMIT = int(1.5 * 1024**3)


def _big_png(path: Path) -> Path:
    """13000 x 13000, almost all black: a PNG of about 164 KB that declares 169 Mpx."""
    img = Image.new("L", (BIG, BIG), 0)
    ImageDraw.Draw(img).rectangle([4000, 4000, 6000, 6000], fill=255)
    img.save(path, format="PNG", optimize=False)
    return path


def _big_jpeg(path: Path) -> Path:
    """13000 x 13000 RGB JPEG, black with one red square at (4000, 4000)-(6000, 6000)."""
    img = Image.new("RGB", (BIG, BIG), (0, 0, 0))
    ImageDraw.Draw(img).rectangle([4000, 4000, 5999, 5999], fill=(230, 0, 0))
    img.save(path, format="JPEG", quality=90)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds no pixels (what a bomb's header looks like)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    return {"png": _big_png(folder / "big.png"), "jpeg": _big_jpeg(folder / "big.jpg"), "folder": folder}


@pytest.mark.slow
def test_a_big_png_is_refused_before_any_pixel_is_decoded(big):
    data = big["png"].read_bytes()
    assert len(data) < 400_000  # a small file that declares a huge image
    info = read_info(data)
    assert (info.width, info.height, info.format) == (BIG, BIG, "PNG")
    with pytest.raises(ImageTooLarge) as err:
        decode_rgb(data, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    assert err.value.rule == "image-too-large"
    reason = err.value.reason
    assert "13000x13000 = 169,000,000 pixels" in reason and "--max-image-pixels" in reason
    assert "only JPEG" in reason and "\n" not in reason
    with pytest.raises(ImageTooLarge):
        decoded_pixels(info, DEFAULT_MAX_IMAGE_PIXELS)
    # the budget is the user's: raised above the image, the same file decodes
    small = Image.new("L", (3000, 2000), 7)
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    with pytest.raises(ImageTooLarge, match="6,000,000 pixels is over the pixel budget of 1,000,000"):
        decode_rgb(buf.getvalue(), max_pixels=1_000_000)
    assert decode_rgb(buf.getvalue(), max_pixels=6_000_000).pixels.shape == (2000, 3000, 3)


@pytest.mark.slow
def test_a_big_jpeg_is_reduced_while_decoding(big):
    data = big["jpeg"].read_bytes()
    info = read_info(data)
    assert decoded_pixels(info, DEFAULT_MAX_IMAGE_PIXELS) == 3250 * 3250  # 1/2 is 42 Mpx, 1/4 fits
    decoded = decode_rgb(data, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    assert decoded.pixels.shape == (3250, 3250, 3)
    assert (decoded.scale_x, decoded.scale_y) == (4.0, 4.0)
    red = decoded.pixels[:, :, 0] > 150
    ys, xs = red.nonzero()
    assert abs(xs.min() * 4 - 4000) <= 8 and abs((xs.max() + 1) * 4 - 6000) <= 8
    assert abs(ys.min() * 4 - 4000) <= 8
    # a budget below 1/8 of the image refuses it
    with pytest.raises(ImageTooLarge, match="even decoded at 1/8"):
        decode_rgb(data, max_pixels=1_000_000)
    # a model input size is still decoded small (draft to the smallest size not below it)
    assert decode_rgb(data, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, size=(32, 32)).pixels.shape == (32, 32, 3)


def test_pillow_bomb_limits_and_broken_images_are_one_line_failures():
    bomb = _png_header_only(50_000, 50_000)  # over Pillow's hard limit (179 Mpx): refused at open
    with pytest.raises(ImageTooLarge, match="2,500,000,000 pixels, over Pillow's decompression-bomb limit"):
        read_info(bomb)
    with pytest.raises(ImageTooLarge):
        decode_image(bomb, max_pixels=10**12)
    with pytest.raises(ImageUnreadable, match="no image format Pillow knows"):
        read_info(b"not an image")
    truncated = _png_header_only(10, 10)
    with pytest.raises(ImageUnreadable) as err:
        decode_rgb(truncated, max_pixels=100)
    assert err.value.rule == "image-unreadable" and "\n" not in err.value.reason


@pytest.mark.slow  # the ``big`` fixture generates the 13 000-pixel images
def test_thumbnail_decode_keeps_the_stored_size(big):
    img, info = decode_image(big["jpeg"].read_bytes(), max_pixels=DEFAULT_MAX_IMAGE_PIXELS, thumbnail=240)
    assert max(img.size) <= 240 and (info.width, info.height) == (BIG, BIG)


def test_budget_option_values():
    assert check_budget(5) == 5
    for bad in (0, -1, True, 2.5, "10"):
        with pytest.raises(UsageError, match="--max-image-pixels must be a positive number"):
            check_budget(bad)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_depth_is_the_bands_of_the_colours_an_image_shows():
    """One rule for ``image_size.depth``: a palette image shows colours, so it is 3 (as the RGB a
    viewer or trainer makes of it), 4 with transparency; grey levels of any bit depth are 1."""
    palette = Image.new("P", (4, 3))
    palette.putpalette([255, 0, 0, 0, 255, 0])
    cases = {"P": palette, "L": Image.new("L", (4, 3)), "LA": Image.new("LA", (4, 3)),
             "RGB": Image.new("RGB", (4, 3)), "RGBA": Image.new("RGBA", (4, 3)), "1": Image.new("1", (4, 3)),
             "I;16": Image.new("I;16", (4, 3))}
    expected = {"P": 3, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "1": 1, "I;16": 1}
    for mode, img in cases.items():
        info = read_info(_png(img))
        assert (info.mode, info.width, info.height, info.depth) == (mode, 4, 3, expected[mode])
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    assert read_info(_png(transparent)).depth == 3  # Pillow opens a P PNG with tRNS as mode P
    assert decode_rgb(_png(palette), max_pixels=100).info.depth == 3


def _saved(array, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped_white():
    """Pillow's ``convert("RGB")`` clips 16-bit samples at 255: a 16-bit PNG, TIFF or PGM reached the
    model all but white. Its 0..65535 samples are scaled to 0..255; samples of no known range
    (32-bit integer TIFF, float) are refused, one line."""
    import numpy as np

    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0, 257, ..., 65535
    for fmt in ("PNG", "TIFF", "PPM"):
        decoded = decode_rgb(_saved(ramp, fmt), max_pixels=1000)
        assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (16, 16, 3), fmt
        assert np.array_equal(decoded.pixels[..., 0].ravel(), np.arange(256)), fmt
        assert np.array_equal(decoded.pixels[..., 0], decoded.pixels[..., 2]), fmt
        assert decoded.info.depth == 1
    for array, words in ((ramp.astype(np.int32), "32-bit integer pixels (Pillow mode I, TIFF)"),
                         (ramp.astype(np.float32) / 65535, "floating-point pixels (Pillow mode F, TIFF)")):
        with pytest.raises(ImageUnreadable) as err:
            decode_rgb(_saved(array, "TIFF"), max_pixels=1000)
        assert err.value.rule == "image-unreadable"
        assert str(err.value).startswith(words) and "8 or 16 bits" in str(err.value)


def test_mask_png_keeps_class_indices_and_the_one_palette():
    import numpy as np

    mask = np.array([[0, 1, 2], [2, 2, 0]], dtype=np.uint8)
    colors = class_colors(3)
    assert colors[0] == "#ffffff" and len(set(class_colors(60))) == 60
    img = Image.open(io.BytesIO(mask_png(mask, colors)))
    assert img.mode == "P" and np.array_equal(np.asarray(img), mask)
    rgb = img.convert("RGB")
    assert ["#{:02x}{:02x}{:02x}".format(*rgb.getpixel((x, 0))) for x in range(3)] == colors


# ------------------------------------------------------------------ a real detection job


def _peak_rss_of(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd`` as the only child of a wrapper process and return the child's peak RSS in
    bytes (``RUSAGE_CHILDREN``: maxrss of waited-for children, here just the job)."""
    wrapper = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(r.returncode)\n")
    run = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, timeout=900,
                         check=False, cwd=cwd)
    line = next(ln for ln in run.stderr.splitlines() if ln.startswith("PEAK_RSS_KB"))
    return run, int(line.split()[1]) * 1024


@pytest.mark.slow
def test_detection_job_on_13000_pixel_images_stays_under_1_5_gb(big, tmp_path):
    torch = pytest.importorskip("torch")
    from tests.test_inference_support import ColorBoxes, save_scripted

    del torch
    model = save_scripted(ColorBoxes(), tmp_path / "boxes.pt")
    small = tmp_path / "small.png"
    img = Image.new("RGB", (64, 48), (0, 0, 0))
    ImageDraw.Draw(img).rectangle([10, 10, 29, 19], fill=(230, 0, 0))
    img.save(small)
    refs = [str(big["png"])] * 6 + [str(big["jpeg"])] * 4 + [str(small)] * 2
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": r}) + b"\n" for r in refs))
    repo = Path(__file__).resolve().parents[1]
    run, peak = _peak_rss_of(
        [sys.executable, "-m", "totask_manifest", "annotate", str(manifest), "--job-name", "big",
         "--task-type", "object-detection", "--method", "inference", "--model", str(model),
         "--allow-root", str(tmp_path.parent), "--output", str(tmp_path / "out"), "--device", "cpu"],
        repo,
    )
    print(f"peak RSS of the detection job: {peak / 1024**2:.0f} MiB")
    assert "Traceback" not in run.stderr and "DecompressionBombWarning" not in run.stderr
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 1024**2:.0f} MiB"
    records = [orjson.loads(x) for x in (tmp_path / "out" / "big" / "manifests" / "output" / "output.manifest")
               .read_bytes().splitlines()]
    assert len(records) == len(refs)
    for rec in records[:6]:  # the PNG: refused, with the reason and the way out
        reason = rec["big-metadata"]["failure-reason"]
        assert "too large: 13000x13000" in reason and "--max-image-pixels" in reason
    for rec in records[6:10]:  # the JPEG: labeled from the image decoded at 1/4, in its own coordinates
        value = rec["big"]
        assert value["image_size"] == [{"width": BIG, "height": BIG, "depth": 3}]
        (box,) = value["annotations"]
        assert abs(box["left"] - 4000) <= 16 and abs(box["top"] - 4000) <= 16
        assert abs(box["width"] - 2000) <= 32 and abs(box["height"] - 2000) <= 32
    for rec in records[10:]:
        assert rec["big"]["annotations"][0]["left"] == 10
