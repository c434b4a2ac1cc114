"""Model runners: TorchScript, torch.export, entry points with weights; device selection."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.test_inference_support import MeanColor, save_scripted  # noqa: E402
from totask_manifest._errors import JobError, UsageError  # noqa: E402
from totask_manifest._models.device import select_device  # noqa: E402
from totask_manifest._models.heads import head_for  # noqa: E402
from totask_manifest._models.loading import (  # noqa: E402
    load_entry_point,
    load_exported,
    load_torchscript,
    parse_input_size,
)
from totask_manifest._models.sources import RunnerSettings, check_model_ref, source_for  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"),
]

CLASSIFIER = head_for("image-classification")


def uint8_batch(*rgb: tuple[int, int, int], size: int = 8, width: int | None = None) -> list:
    """Decoded images as the pipeline hands them to a runner: uint8 ``H x W x 3`` arrays."""
    import numpy as np

    return [np.full((size, width or size, 3), c, dtype=np.uint8) for c in rgb]


def load_runner(ref: str, task_type: str = "image-classification", **settings):
    return source_for(ref).runner(head_for(task_type), RunnerSettings(device="cpu", **settings))


class Plain(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class WithMethod(torch.nn.Module):
    @torch.jit.export
    def get_class_names(self) -> list[str]:
        return ["x", "y", "z"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_torchscript_class_names_from_attribute_method_and_extra_files(tmp_path):
    a = load_torchscript(str(save_scripted(MeanColor(), tmp_path / "a.pt")))
    assert a.class_names == ["red", "green", "blue"] and a.input_size == (32, 32)
    b = load_torchscript(str(save_scripted(WithMethod(), tmp_path / "b.pt")))
    assert b.class_names == ["x", "y", "z"] and b.input_size is None
    c = load_torchscript(str(save_scripted(Plain(), tmp_path / "c.pt", class_names='["p", "q", "r"]')))
    assert c.class_names == ["p", "q", "r"]
    d = load_torchscript(str(save_scripted(Plain(), tmp_path / "d.pt")))
    assert d.class_names is None


class Named(torch.nn.Module):
    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.class_names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize(("names", "said"), [
    (["cat", "dog", "cat"], "class name 'cat' is given twice (ids 0 and 2)"),
    (["cat", " ", "dog"], "class 1 has an empty name"),
])
def test_a_models_class_names_attribute_follows_the_names_file_rule(tmp_path, names, said):
    """A names file or extra file with a name twice or a blank one was refused, the same list in
    the model's ``class_names`` attribute was taken: two class ids written under one name. It is
    refused now when the job would use it; ``--class-names`` (which wins) still names the classes."""
    from totask_manifest._api_checks import check_options

    path = str(save_scripted(Named(names), tmp_path / "named.pt"))
    loaded = load_torchscript(path)
    assert loaded.class_names is None and said in loaded.names_refused and "class_names attribute" in loaded.names_refused
    with pytest.raises(UsageError) as caught:
        check_options("inference", {"model": path}, "image-classification")
    assert said in str(caught.value), str(caught.value)
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    check_options("inference", {"model": path, "class_names": str(tmp_path / "names.txt")}, "image-classification")


def test_an_extra_class_names_file_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path):
    """It raised ``UnicodeDecodeError`` out of the command (a traceback, exit 1)."""
    from totask_manifest._api_checks import check_options

    path = tmp_path / "latin.pt"
    torch.jit.script(Plain()).save(str(path), _extra_files={"class_names": "caf\xe9\nthé".encode("latin-1")})
    with pytest.raises(UsageError) as caught:
        check_options("inference", {"model": str(path)}, "image-classification")
    assert "extra file 'class_names'" in str(caught.value) and "not UTF-8" in str(caught.value)


def test_runner_scales_to_unit_range_and_checks_output_shape(tmp_path):
    path = save_scripted(Plain(), tmp_path / "p.pt")
    runner = load_runner(str(path), input_size=(8, 8))
    assert runner.input_size == (8, 8) and runner.head.kind == "classifier"
    out = runner.predict(uint8_batch((255, 0, 51), (0, 102, 0)))
    assert torch.allclose(torch.stack(out), torch.tensor([[1.0, 0.0, 0.2], [0.0, 0.4, 0.0]]))
    assert load_runner(str(path)).input_size == (224, 224)  # neither the flag nor the model says
    assert load_runner(str(path), "object-detection", input_size=(8, 8)).input_size is None
    seg = load_runner(str(path), "semantic-segmentation", input_size=(8, 8))
    with pytest.raises(JobError, match=r"must return \[B, C, H, W\]"):
        seg.predict(uint8_batch((1, 2, 3)))


@pytest.mark.slow  # torch.export's first use in a process costs about 3.5 s of CPU
def test_torch_export_program_with_dynamic_and_static_batch(tmp_path):
    names = "a\nb\nc\n"
    dynamic = torch.export.export(Plain(), (torch.rand(4, 3, 16, 12),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
    torch.export.save(dynamic, tmp_path / "dyn.pt2", extra_files={"class_names": names})
    static = torch.export.export(Plain(), (torch.rand(4, 3, 16, 12),))
    torch.export.save(static, tmp_path / "static.pt2")
    assert source_for(str(tmp_path / "dyn.pt2")).name == "export"
    loaded = load_exported(str(tmp_path / "dyn.pt2"))
    assert loaded.class_names == ["a", "b", "c"]
    assert loaded.static_batch is None and loaded.input_size == (16, 12)
    for name in ("dyn.pt2", "static.pt2"):
        runner = load_runner(str(tmp_path / name))
        assert runner.input_size == (16, 12)  # the program fixed H and W: images are resized to them
        for n in (1, 3, 4, 9):  # the static program sees padded and split batches
            batch = uint8_batch(*[(i * 20, 0, 255) for i in range(n)], size=16, width=12)
            out = torch.stack(runner.predict(batch))
            assert out.shape == (n, 3)
            assert torch.allclose(out[:, 0], torch.tensor([i * 20 / 255 for i in range(n)]))


def test_entry_point_with_weights_only_state_dict(tmp_path):
    module_file = tmp_path / "mymodel.py"
    module_file.write_text(
        "import torch\n"
        "class Lin(torch.nn.Module):\n"
        "    class_names = ['a', 'b']\n"
        "    input_size = 4\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(3, 2)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.mean(dim=(2, 3)))\n"
        "def build():\n"
        "    return Lin()\n"
        "def broken():\n"
        "    raise ValueError('no GPU here')\n"
    )
    state = {"fc.weight": torch.tensor([[1.0, 0, 0], [0, 2.0, 0]]), "fc.bias": torch.tensor([0.5, 0.0])}
    torch.save(state, tmp_path / "w.pt")
    spec = f"{module_file}:build"
    assert source_for(spec).name == "entrypoint" and source_for(spec).local
    loaded = load_entry_point(spec, str(tmp_path / "w.pt"))
    assert loaded.class_names == ["a", "b"] and loaded.input_size == (4, 4)
    runner = load_runner(spec, weights=str(tmp_path / "w.pt"))
    out = runner.predict(uint8_batch((255, 255, 0), size=4))[0]
    assert torch.allclose(out, torch.tensor([1.5, 2.0]))
    # nested {"state_dict": ...} checkpoints are accepted
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pt")
    load_entry_point(spec, str(tmp_path / "ckpt.pt"))

    torch.save({"fc.weight": torch.zeros(5, 3)}, tmp_path / "bad.pt")
    with pytest.raises(UsageError, match="do not fit the model"):
        load_entry_point(spec, str(tmp_path / "bad.pt"))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"fc.weight": Evil()}))
    with pytest.raises(UsageError, match="weights_only=True"):
        load_entry_point(spec, str(tmp_path / "evil.pt"))
    with pytest.raises(UsageError, match="the factory failed: ValueError: no GPU here"):
        load_entry_point(f"{module_file}:broken", None)
    with pytest.raises(UsageError, match="has no 'missing'"):
        load_entry_point(f"{module_file}:missing", None)
    with pytest.raises(UsageError, match="cannot import"):
        load_entry_point("no_such_package_xyz.models:build", None)


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
def test_a_file_that_is_not_torchscript_says_what_to_do(tmp_path):
    torch.save(Plain().state_dict(), tmp_path / "state.pt")
    with pytest.raises(UsageError, match=r"not a TorchScript file.*module:factory"):
        load_torchscript(str(tmp_path / "state.pt"))
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(UsageError, match=r"not a torch\.export program"):
        load_exported(str(tmp_path / "junk.pt2"))


def test_model_spec_checks(tmp_path):
    remote = source_for("https://models.example/predict")
    assert remote.name == "http" and not remote.local
    assert source_for("pkg.models:make").name == "entrypoint"
    assert source_for("s3://bucket/model.pt").name == "torchscript"
    assert source_for(" m.PT2 ").name == "export"
    with pytest.raises(UsageError, match="no such file"):
        check_model_ref(str(tmp_path / "absent.pt"))
    with pytest.raises(UsageError, match="a torchscript model that carries its own weights"):
        check_model_ref(str(tmp_path / "absent.pt"), weights="w.pt")
    with pytest.raises(UsageError, match="--weights: no such file"):
        check_model_ref("pkg.models:make", weights=str(tmp_path / "absent-w.pt"))
    with pytest.raises(UsageError, match="use --method synapse-preprocessor"):
        check_model_ref("synapse:12")
    for empty in (None, "", "  "):
        with pytest.raises(UsageError, match="needs --model"):
            source_for(empty)
    # job.json keeps local files absolute, URLs and module names as given
    (tmp_path / "f.py").write_text("")
    assert source_for("rel/model.pt").absolute() == str(Path("rel/model.pt").absolute())
    assert source_for("s3://b/m.pt2").absolute() == "s3://b/m.pt2"
    assert source_for("pkg.models:make").absolute() == "pkg.models:make"
    assert source_for("rel/f.py:build").absolute() == f"{Path('rel/f.py').absolute()}:build"
    assert parse_input_size("320,240") == (320, 240)
    assert parse_input_size("64x48") == (64, 48)
    assert parse_input_size(128) == (128, 128)
    for bad in ("0", "a", [1, 2, 3], True, -4):
        with pytest.raises(UsageError):
            parse_input_size(bad)


def test_device_fallback_and_fp16_messages(caplog):
    with caplog.at_level(logging.INFO, logger="totask_manifest.inference"):
        plan = select_device("cuda", use_fp16=True)
    if torch.cuda.is_available():  # pragma: no cover - only on a GPU machine
        assert plan.device.type == "cuda" and plan.fp16
        return
    assert plan.device.type == "cpu" and plan.fp16 is False
    text = caplog.text
    assert "device cuda requested but" in text and "falling back to the CPU" in text
    assert "use_fp16 ignored on cpu" in text
    assert select_device("auto").device.type in ("cpu", "mps")
    assert select_device("cpu", use_fp16=False).notes == []


def test_fp16_on_cuda_runs_in_half_precision():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Plain()), buf)
    path = "memory://fp16/plain.pt"
    import fsspec

    with fsspec.open(path, "wb") as f:
        f.write(buf.getvalue())
    runner = source_for(path).runner(CLASSIFIER, RunnerSettings(device="cuda", use_fp16=True, input_size=(8, 8)))
    assert runner.plan.fp16
    out = runner.predict(uint8_batch((255, 0, 0)))
    assert out[0].dtype == torch.float32 and abs(float(out[0][0]) - 1.0) < 1e-2
