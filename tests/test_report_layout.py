"""The report's drawing: chart text inside the chart (long failure reasons too), a labelled y axis,
tags on dense thumbnails that stay inside the tile, overlap nothing and cover no small box,
absolute paths; and the page of a job with long reasons and dense boxes in headless Chromium."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.support.browser import CHROMIUM, chromium
from totask_manifest._analytics.report import render_report, write_report
from totask_manifest._analytics.svg import CHAR_W, hbar_chart, histogram, nice_ticks
from totask_manifest._analytics.thumbnails import _overlaps, place_tags, render_tile

REPO = Path(__file__).resolve().parents[1]
LONG = [(f"fetch: no such file (/data/run/labels/missing-annotation-file-with-a-long-name-{i}.json)", 1)
        for i in range(8)]


def _texts(svg: str) -> list[tuple[float, str, str]]:
    """(x, anchor, text) of every <text> element."""
    out = []
    for attrs, text in re.findall(r"<text ([^>]*)>([^<]*)</text>", svg):
        x = float(re.search(r'x="([-0-9.]+)"', attrs).group(1))
        anchor = re.search(r'text-anchor="(\w+)"', attrs)
        out.append((x, anchor.group(1) if anchor else "start", text))
    return out


@pytest.mark.parametrize("rows", [LONG, [("0 person", 27), ("5 parking meter", 29)],
                                  [("a" * 30, 5), ("b", 1_234_567)]])
def test_bar_chart_text_stays_inside_the_chart(rows):
    width = 560
    svg = hbar_chart(rows, width=width)
    for x, anchor, text in _texts(svg):
        shown = text.replace("&amp;", "&")
        start = x - len(shown) * CHAR_W if anchor == "end" else x
        assert start >= 0 and start + len(shown) * CHAR_W <= width + 1, (x, text)
    labels = [t for _, _, t in _texts(svg) if not t.replace(",", "").isdigit()]
    # long reasons keep their beginning and their end (what tells them apart)
    if rows is LONG:
        assert all(t.startswith("fetch: no such file") and t.endswith(f"{i}.json)") for i, t in enumerate(labels))


def test_histogram_labels_its_y_axis():
    assert nice_ticks(129) == [0, 50, 100, 150] and nice_ticks(7) == [0, 2, 4, 6, 8] and nice_ticks(1) == [0, 1]
    svg = histogram([3, 129, 40], ["a", "b", "c"])
    ticks = [t for _, anchor, t in _texts(svg) if anchor == "end"]
    assert ticks == ["0", "50", "100", "150"]


def test_tags_stay_inside_overlap_nothing_and_cover_no_small_box():
    rng = random.Random(7)
    size = (240, 180)
    for _ in range(30):
        rects = []
        for _ in range(rng.randrange(1, 40)):
            w, h = rng.choice([2, 5, 20, 60]), rng.choice([2, 5, 20, 50])
            x, y = rng.uniform(0, size[0] - w), rng.uniform(0, size[1] - h)
            rects.append((x, y, x + w, y + h))
        extents = [(0, 0, rng.randrange(30, 110), 12) for _ in rects]
        spots = place_tags(extents, rects, size)
        placed = [s for s in spots if s is not None]
        assert placed  # the first box always finds room on a tile this size
        for i, s in enumerate(spots):
            if s is None:
                continue
            assert s[0] >= 0 and s[2] <= size[0] and s[1] >= 0 and s[3] <= size[1]
            area = (s[2] - s[0]) * (s[3] - s[1])
            for j, r in enumerate(rects):
                if j != i and (r[2] - r[0]) * (r[3] - r[1]) < 2 * area:
                    assert not _overlaps(s, r)
        for a in range(len(placed)):
            for b in range(a + 1, len(placed)):
                assert not _overlaps(placed[a], placed[b])


@pytest.mark.slow
def test_boxes_are_drawn_at_tile_scale(tmp_path):
    """A box at the right edge of a 4000-pixel image: its tag is drawn inside the 240-pixel tile."""
    Image.new("RGB", (4000, 3000), (255, 255, 255)).save(tmp_path / "big.png")
    value = {"image_size": [{"width": 4000, "height": 3000, "depth": 3}],
             "annotations": [{"class_id": 0, "top": 1000, "left": 3600, "height": 800, "width": 399}]}
    meta = {"objects": [{"confidence": 0.9}], "class-map": {"0": "a very long class name"}}
    tile = render_tile(str(tmp_path / "big.png"), "object-detection", value, meta,
                       image=(tmp_path / "big.png").read_bytes())
    assert tile.caption == "1 box"
    import base64
    import io

    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(tile.data_uri.split(",", 1)[1])))).astype(int)
    assert img.shape[:2] == (180, 240)
    blue = np.abs(img - [0x42, 0x69, 0xD0]).sum(axis=2) < 60  # class 0's colour: the tag's fill
    cols = np.where(blue.any(axis=0))[0]
    # the tag (wider than the box) was moved left to fit: filled pixels well left of the box
    assert cols.min() < 240 * 3600 / 4000 - 20 and cols.max() <= 239


def test_paths_on_the_page_are_absolute(tmp_path, monkeypatch):
    job = tmp_path / "jobs" / "j"
    (job / "manifests" / "output").mkdir(parents=True)
    (job / "manifests" / "output" / "output.manifest").write_text('{"source-ref":"a.jpg"}\n')
    (job / "job.json").write_text(json.dumps({"job-name": "j", "status": "COMPLETED"}))
    monkeypatch.chdir(tmp_path)
    html, _, _ = render_report("jobs/j", samples=0)
    assert f">{job}<" in html and f">{job}/manifests/output/output.manifest<" in html
    assert ">jobs/j<" not in html


def _dense_job(root: Path) -> Path:
    """A real job: images with 25 boxes (tiny ones, one at the right edge), long failure reasons."""
    names = ["person", "bicycle", "traffic light", "fire hydrant", "stop sign", "parking meter"]
    rng = random.Random(3)
    (root / "img").mkdir()
    (root / "lab").mkdir()
    lines = []
    for i in range(6):
        w_img, h_img = (1600, 1200) if i % 2 else (640, 480)
        img = Image.new("RGB", (w_img, h_img), (90 + 20 * i, 120, 150))
        ImageDraw.Draw(img).ellipse([w_img * 0.7, h_img * 0.1, w_img * 0.9, h_img * 0.35], fill=(250, 200, 40))
        img.save(root / "img" / f"{i}.jpg")
        anns = []
        for k in range(25):
            w, h = rng.choice([4, 30, 120]) * w_img / 640, rng.choice([4, 30, 90]) * h_img / 480
            x = w_img - w - 1 if k == 0 else rng.uniform(0, w_img - w)
            anns.append({"class_id": rng.randrange(6), "top": rng.uniform(0, h_img - h), "left": x,
                         "height": h, "width": w})
        label = {"image_size": [{"width": w_img, "height": h_img, "depth": 3}], "annotations": anns}
        meta = {"objects": [{"confidence": 0.5}] * 25, "class-map": {str(a["class_id"]): names[a["class_id"]]
                                                                      for a in anns}}
        (root / "lab" / f"{i}.json").write_text(json.dumps({"label": label, "metadata": meta}))
        lines.append({"source-ref": f"img/{i}.jpg", "u": f"lab/{i}.json"})
    lines += [{"source-ref": f"img/{i}.jpg", "u": f"lab/missing-annotation-file-with-a-very-long-name-{i}.json"}
              for i in range(6, 12)]
    (root / "in.manifest").write_text("".join(json.dumps(r) + "\n" for r in lines))
    run = subprocess.run([sys.executable, "-m", "totask_manifest", "annotate", str(root / "in.manifest"),
                          "--job-name", "dense", "--label-attribute", "boxes", "--task-type", "object-detection",
                          "--url-key", "u", "--allow-root", str(root), "--output", str(root / "out")],
                         capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert run.returncode == 0, run.stderr
    return root / "out" / "dense"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_dense_job_page_in_headlesschromium(tmp_path):
    job = _dense_job(tmp_path)
    page = tmp_path / "report.html"
    write_report(str(job), str(page))
    html = page.read_text()
    assert "tags left out: no room" in html  # dense tiles say what they could not tag
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1300,2600", page.resolve().as_uri()], tmp_path / "profile")
    assert shot.exists(), run.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # failures are charted by rule (short ids), and the long reasons are listed whole in the table
    failures_chart = html[html.index("failures by rule"):].split("</svg>", 1)[0]
    assert "file-missing" in failures_chart
    assert "missing-annotation-file-with-a-very-long-name" in html.split("failures by rule", 1)[1]
    bars = [np.abs(img - c).sum(axis=2) < 30 for c in ([0x42, 0x69, 0xD0], [0xEF, 0xB1, 0x18])]
    assert all(b.sum() > 200 for b in bars)


@pytest.mark.slow
def test_sample_images_of_appended_manifests_resolve_in_their_own_folder(tmp_path):
    """The job resolved an --append manifest's relative references in its folder (issue 12); the
    report's thumbnails must find the same images, also after a blank line in the main manifest."""
    for folder, name in ((tmp_path / "main", "a"), (tmp_path / "other", "b")):
        (folder / "img").mkdir(parents=True)
        (folder / "lab").mkdir()
        Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "img" / f"{name}.png")
        (folder / "lab" / f"{name}.json").write_text(json.dumps({"label": 0, "metadata": {"class-name": name}}))
        (folder / "m.manifest").write_text(json.dumps({"source-ref": f"img/{name}.png", "u": f"lab/{name}.json"})
                                           + ("\n\n" if name == "a" else "\n"))
    run = subprocess.run([sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "main" / "m.manifest"),
                          "--append", str(tmp_path / "other" / "m.manifest"), "--job-name", "app",
                          "--label-attribute", "cls", "--task-type", "image-classification", "--url-key", "u",
                          "--allow-root", str(tmp_path), "--output", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert run.returncode == 0, run.stderr
    html, _, _ = render_report(str(tmp_path / "out" / "app"))
    assert "image not available" not in html
    assert html.count("data:image/jpeg;base64,") == 2 and "b (" in html


@pytest.mark.parametrize("name", ["a\u202eb", "line\nbreak", "nul\x00x", ""])
def test_tags_and_captions_show_a_name_that_does_not_print_as_the_rest_of_the_report_does(tmp_path, name):
    """A class name with a right-to-left override, a line break or a NUL was drawn on the box's tag
    (and put in the caption) as it was: the text after U+202E turned around, and a NUL ended the
    caption's text. Tags and captions show it as ``stats.shown`` does, the Python literal, as the
    report's charts and tables do: the tag drawn is the one drawn for that literal."""
    from totask_manifest._analytics.stats import shown

    Image.new("RGB", (400, 300), (255, 255, 255)).save(tmp_path / "img.png")
    value = {"image_size": [{"width": 400, "height": 300, "depth": 3}],
             "annotations": [{"class_id": 0, "top": 100, "left": 100, "height": 80, "width": 120}]}

    def pixels(class_name):
        tile = render_tile(str(tmp_path / "img.png"), "object-detection", value,
                           {"objects": [{"confidence": 0.9}], "class-map": {"0": class_name}},
                           image=(tmp_path / "img.png").read_bytes())
        assert tile.caption == "1 box"
        return tile.data_uri

    assert shown(name) != name
    assert pixels(name) == pixels(shown(name))
    tile = render_tile(str(tmp_path / "img.png"), "image-classification", 0, {"class-name": name, "confidence": 0.5},
                       image=(tmp_path / "img.png").read_bytes())
    assert tile.caption == f"{shown(name)} (0.5)"
