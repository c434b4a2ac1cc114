"""Model archives with code planted in them are refused before anything in them runs.

Each archive is a real ``torch.export.save`` / ``torch.jit.save`` file with one part replaced by a
payload that creates a marker file when torch's own loader meets it. A subprocess first shows that
plain ``torch.export.load`` runs the payload (so the test could fail); the package's loader
refuses the same bytes with a one-line message, and the marker never appears. Good programs,
dynamic shapes included, still load.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.jobs_helpers import run_cli  # noqa: E402
from totask_manifest._errors import UsageError  # noqa: E402
from totask_manifest._models.loading import load_exported, load_torchscript  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"),
]


class Plain(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * self.scale


class _Touch:
    """Pickles to ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save(_Touch(marker), buf)
    return buf.getvalue()


def _good_pt2(path: Path) -> Path:
    program = torch.export.export(Plain(), (torch.rand(2, 3, 8, 8),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
    torch.export.save(program, path, extra_files={"class_names": "a\nb\nc\n"})
    return path


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes], add: dict[str, bytes] | None = None) -> Path:
    """A copy of the zip with members (matched by their path under the root folder) replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            inner = info.filename.split("/", 1)[1]
            data = replace.get(inner, zin.read(info))
            zout.writestr(info.filename, data)
        for inner, data in (add or {}).items():
            zout.writestr(f"{root}/{inner}", data)
    return dst


def _planted(tmp: Path, good: Path, marker: Path) -> dict[str, Path]:
    with zipfile.ZipFile(good) as z:
        names = {n.split("/", 1)[1]: n for n in z.namelist()}
        weights_cfg = orjson.loads(z.read(names["data/weights/model_weights_config.json"]))
        model_json = z.read(names["models/model.json"]).decode()
    # 1. the sample inputs: torch retries them with weights_only=False
    out = {"sample-inputs": _rewrite(good, tmp / "sample.pt2", {"data/sample_inputs/model.pt": _payload(marker)})}
    # 2. a weight stored as a pickle (use_pickle), read with weights_only=False
    fqn, entry = next(iter(weights_cfg["config"].items()))
    cfg = {"config": {**weights_cfg["config"], fqn: {**entry, "use_pickle": True}}}
    out["pickled-weight"] = _rewrite(good, tmp / "weight.pt2", {
        "data/weights/model_weights_config.json": orjson.dumps(cfg),
        f"data/weights/{entry['path_name']}": _payload(marker),
    })
    # 3. an "opaque" constant, read with pickle.loads
    consts = {"config": {"evil": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}}}
    out["opaque-constant"] = _rewrite(good, tmp / "opaque.pt2", {
        "data/constants/model_constants_config.json": orjson.dumps(consts),
    }, add={"data/constants/opaque_obj_0": pickle.dumps(_Touch(marker))})
    # 4. a shape expression: torch parses it with sympy.sympify, which evals it
    assert "Symbol('s" in model_json, "the dynamic batch should be a symbolic shape"
    evil = f"__import__('builtins').open('{marker}', 'w') and Symbol('s77')"
    expr = orjson.dumps(evil).decode()[1:-1]
    hacked = model_json.replace("Symbol('s77', positive=True, integer=True)", expr, 1)
    assert hacked != model_json
    out["shape-expression"] = _rewrite(good, tmp / "expr.pt2", {"models/model.json": hacked.encode()})
    # 5. compiled code
    out["aotinductor"] = _rewrite(good, tmp / "aoti.pt2", {}, add={"data/aotinductor/model/model.so": b"\x7fELF"})
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("archives")
    marker = tmp / "PLANTED-CODE-RAN"
    good = _good_pt2(tmp / "good.pt2")
    return {"good": good, "marker": marker, "planted": _planted(tmp, good, marker)}


@pytest.mark.slow
def test_plain_torch_export_load_runs_the_planted_payloads(archives, tmp_path):
    """The archives are real attacks: torch's own loader runs them (in a throwaway process)."""
    marker = archives["marker"]
    for kind in ("sample-inputs", "pickled-weight", "opaque-constant", "shape-expression"):
        path = archives["planted"][kind]
        code = ("import torch, logging; logging.disable(logging.CRITICAL)\n"
                f"try:\n    torch.export.load({str(path)!r})\nexcept Exception:\n    pass\n")
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=False)
        assert marker.exists(), f"{kind}: torch.export.load did not run the payload; the test proves nothing"
        marker.unlink()


@pytest.mark.parametrize("kind", ["sample-inputs", "pickled-weight", "opaque-constant", "shape-expression",
                                  "aotinductor"])
@pytest.mark.slow  # the archives fixture runs torch.export (about 4 s of CPU); the checks below need none
def test_a_planted_pt2_is_refused_and_nothing_runs(archives, kind):
    marker = archives["marker"]
    with pytest.raises(UsageError) as err:
        load_exported(str(archives["planted"][kind]))
    message = str(err.value)
    assert "refused" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.slow
def test_a_planted_pt2_is_refused_by_the_cli_before_a_job_exists(archives, tmp_path):
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    (tmp_path / "in.manifest").write_text(orjson.dumps({"source-ref": str(img)}).decode() + "\n")
    r = run_cli("annotate", str(tmp_path / "in.manifest"), "--job-name", "j", "--task-type", "image-classification",
                "--method", "inference", "--model", str(archives["planted"]["sample-inputs"]),
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"), timeout=180)
    assert r.returncode == 2, r.stderr
    assert "refused: the archive has sample inputs" in r.stderr and "Traceback" not in r.stderr
    assert not archives["marker"].exists()
    assert not (tmp_path / "out" / "j").exists()


class Strided(torch.nn.Module):
    """Dynamic batch, height and width through a strided conv and a resize: the shape expressions
    torch writes hold FloorDiv, Max, TruncToInt and Float('1.5', precision=53)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.interpolate(self.conv(x), scale_factor=1.5)
        return y.mean(dim=(2, 3)) + (y.shape[2] * y.shape[3] // 3 + x.shape[0] % 2)


@pytest.mark.slow
def test_good_programs_still_load(archives, tmp_path):
    loaded = load_exported(str(archives["good"]))
    assert loaded.class_names == ["a", "b", "c"] and loaded.static_batch is None
    out = loaded.module.module()(torch.ones(5, 3, 8, 8))
    assert out.shape == (5, 3)
    dims = {0: torch.export.Dim("b", min=1), 2: torch.export.Dim("h", min=16, max=4096),
            3: torch.export.Dim("w", min=16, max=4096)}
    program = torch.export.export(Strided(), (torch.rand(2, 3, 64, 48),), dynamic_shapes={"x": dims})
    torch.export.save(program, tmp_path / "strided.pt2")
    with zipfile.ZipFile(tmp_path / "strided.pt2") as z:
        text = z.read(next(n for n in z.namelist() if "/models/" in n)).decode()
    assert "FloorDiv(" in text and "Float('1.5', precision=53)" in text
    strided = load_exported(str(tmp_path / "strided.pt2"))
    assert strided.module.module()(torch.rand(3, 3, 40, 50)).shape == (3, 4)


@pytest.mark.parametrize("expression", [
    "__import__('os')", "getattr(s0, chr(95))", "Symbol('__class__')", "s0.__class__", "[s0][0]", "lambda: 1",
    "eval('1')", "open('x', 'w')", "Symbol('s0', **{})",
])
def test_shape_expressions_that_are_code_are_refused(expression):
    from totask_manifest._models.safety import UnsafeArchive, _check_expression

    with pytest.raises(UnsafeArchive, match="which would run as Python"):
        _check_expression(expression, "models/model.json")


def test_torchscript_with_a_planted_pickle_is_refused(tmp_path):
    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    good = tmp_path / "good.pt"
    torch.jit.save(torch.jit.script(AddOne()), good)
    marker = tmp_path / "PLANTED-CODE-RAN"
    for member in ("data.pkl", "constants.pkl"):
        bad = _rewrite(good, tmp_path / f"bad-{member}.pt", {member: pickle.dumps(_Touch(marker), protocol=2)})
        with pytest.raises(UsageError, match="not a TorchScript file"):
            load_torchscript(str(bad))
        assert not marker.exists()
    assert load_torchscript(str(good)).module(torch.zeros(1)).item() == 1


def test_restricted_loading_restores_the_environment():
    from totask_manifest._models.safety import restricted_loading

    before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    with restricted_loading():
        assert os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"
        with pytest.raises(Exception, match="Weights only load failed"):
            torch.load(io.BytesIO(pickle.dumps(_Touch(Path(os.devnull)))), weights_only=False)
    assert os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD") == before
