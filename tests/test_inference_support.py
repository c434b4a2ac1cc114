"""Models and images for the inference tests (no tests here).

The models are made "outside the project": plain ``nn.Module``s written here, scripted and saved
by the tests, whose outputs follow from the image content, so every expected box, class and mask
is known exactly:

* ``ColorBoxes`` (detector): per channel c, the box around pixels where c is bright and the other
  channels dark; its score is the mean of channel c inside the box; label c;
* ``MeanColor`` (classifier): logits = 10 x the mean of each channel;
* ``ColorSegmenter`` (segmenter): background logit 5, class c+1 logit 10 x channel c.
"""

import io
from pathlib import Path
from typing import Dict, List  # noqa: UP035 (TorchScript reads these annotations)

import orjson
import pytest

torch = pytest.importorskip("torch")
from PIL import Image, ImageDraw  # noqa: E402

COLORS = ["red", "green", "blue"]


class ColorBoxes(torch.nn.Module):
    class_names: List[str]  # noqa: UP006

    def __init__(self) -> None:
        super().__init__()
        self.class_names = list(COLORS)

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for img in images:
            boxes: List[torch.Tensor] = []  # noqa: UP006
            scores: List[torch.Tensor] = []  # noqa: UP006
            labels: List[int] = []  # noqa: UP006
            for c in range(3):
                others = torch.cat([img[:c], img[c + 1:]]).amax(0)
                m = (img[c] > 0.2) & (others < 0.1)
                if bool(m.any()):
                    nz = torch.nonzero(m)
                    ys = nz[:, 0]
                    xs = nz[:, 1]
                    boxes.append(torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float())
                    scores.append(img[c][m].float().mean())
                    labels.append(c)
            if len(boxes) > 0:
                out.append({"boxes": torch.stack(boxes), "scores": torch.stack(scores),
                            "labels": torch.tensor(labels, dtype=torch.int64)})
            else:
                out.append({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
                            "labels": torch.zeros(0, dtype=torch.int64)})
        return out


class MeanColor(torch.nn.Module):
    class_names: List[str]  # noqa: UP006
    input_size: List[int]  # noqa: UP006

    def __init__(self) -> None:
        super().__init__()
        self.class_names = list(COLORS)
        self.input_size = [32, 32]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * 10


class ColorSegmenter(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        background = torch.full_like(x[:, :1], 0.5)
        return torch.cat([background, x], dim=1) * 10


def save_scripted(module: torch.nn.Module, path: Path, **extra: str) -> Path:
    torch.jit.script(module).save(str(path), _extra_files=extra)
    return path


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def boxes_image(width: int, height: int, rects: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]]) -> Image.Image:
    """Black image with filled rectangles ``((x1, y1, x2, y2) inclusive, rgb)``."""
    im = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(im)
    for box, rgb in rects:
        draw.rectangle(box, fill=rgb)
    return im


def detection_set(folder: Path, n: int) -> list[dict]:
    """``n`` PNGs: a red box (score 230/255) moving right, a green box (score 100/255) fixed.

    Returns, per image, the expected boxes as GT annotations for both colours.
    """
    folder.mkdir(parents=True, exist_ok=True)
    expected = []
    for i in range(n):
        w, h = 80 + i % 7, 60
        x = 2 + i % 30
        im = boxes_image(w, h, [((x, 5, x + 15, 30), (230, 0, 0)), ((40 + i % 5, 10, 60 + i % 5, 50), (0, 100, 0))])
        im.save(folder / f"img{i:04d}.png")
        expected.append({
            "size": (w, h),
            "red": {"class_id": 0, "left": x, "top": 5, "width": 16, "height": 26},
            "green": {"class_id": 1, "left": 40 + i % 5, "top": 10, "width": 21, "height": 41},
        })
    return expected


def one_bright_image(root: Path, n: int, bright: int) -> Path:
    """``n`` dark 30x20 PNGs under ``root/img`` but number ``bright`` (near white: the one a
    test's model misbehaves on), and the manifest listing them (relative refs) at ``root/in.manifest``."""
    (root / "img").mkdir(exist_ok=True)
    refs = []
    for i in range(n):
        color = (250, 250, 250) if i == bright else (20, 40, 60)
        (root / "img" / f"{i}.png").write_bytes(png(boxes_image(30, 20, [((0, 0, 29, 19), color)])))
        refs.append(f"img/{i}.png")
    return write_manifest(root / "in.manifest", refs)


def write_manifest(path: Path, refs: list[str], key: str = "source-ref") -> Path:
    path.write_bytes(b"".join(orjson.dumps({key: r, "n": i}) + b"\n" for i, r in enumerate(refs)))
    return path


SLOW_DETECTOR_MODULE = '''
"""A detector for crash tests: ColorBoxes' logic, made slow enough to kill mid-run."""
import time
import torch


class SlowBoxes(torch.nn.Module):
    class_names = ["red", "green", "blue"]

    def __init__(self, delay=0.0):
        super().__init__()
        self.delay = delay
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, images):
        time.sleep(self.delay * len(images))
        out = []
        for img in images:
            boxes, scores, labels = [], [], []
            for c in range(3):
                others = torch.cat([img[:c], img[c + 1:]]).amax(0)
                m = (img[c] > 0.2) & (others < 0.1)
                if bool(m.any()):
                    ys, xs = torch.nonzero(m, as_tuple=True)
                    boxes.append(torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float())
                    scores.append(img[c][m].float().mean() * self.scale[0])
                    labels.append(c)
            if boxes:
                out.append({"boxes": torch.stack(boxes), "scores": torch.stack(scores),
                            "labels": torch.tensor(labels)})
            else:
                out.append({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
                            "labels": torch.zeros(0, dtype=torch.int64)})
        return out


def make(delay=0.05):
    return SlowBoxes(delay)
'''
