"""Two ``file.py:factory`` models from two folders in one process, each importing a module of the
same name beside it (``helper.py``, a ``nets/`` package): the second model got the first folder's
module from ``sys.modules`` (wrong code, no error), and two ``model.py`` shared one module name, so
the first one's classes no longer pickled. A notebook running two jobs, or a chain with another
model, is such a process.

Real model files written here, loaded with the loader and with the public API's jobs.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.test_inference_support import one_bright_image  # noqa: E402
from totask_manifest import JobConfig, annotate  # noqa: E402
from totask_manifest._models.loading import load_entry_point  # noqa: E402

#: a helper beside ``model.py``: a classifier whose winning class is the folder's own
HELPER = '''
import torch

WINNER = {winner}
OUTPUTS = {outputs}


class Net(torch.nn.Module):
    class_names = ["cat", "dog", "fox"][:OUTPUTS]

    def forward(self, x):
        out = torch.zeros(x.shape[0], OUTPUTS)
        out[:, WINNER] = 10.0
        return out
'''
MODEL = '''
import helper
from nets.layers import WIDTH


class Wrapped(helper.Net):
    width = WIDTH


def build():
    return Wrapped()
'''


def _model_folder(folder: Path, winner: int, outputs: int, width: int) -> str:
    """``folder/model.py`` importing ``helper`` and ``nets.layers`` beside it; returns its spec."""
    (folder / "nets").mkdir(parents=True)
    (folder / "helper.py").write_text(HELPER.format(winner=winner, outputs=outputs))
    (folder / "nets" / "__init__.py").write_text("")
    (folder / "nets" / "layers.py").write_text(f"WIDTH = {width}\n")
    (folder / "model.py").write_text(MODEL)
    return f"{folder / 'model.py'}:build"


@pytest.fixture(autouse=True)
def _bare_names() -> Iterator[None]:
    """The names these models import are not left to the next test (nor taken from an earlier)."""
    def drop() -> None:
        for name in [n for n in sys.modules if n.partition(".")[0] in ("helper", "nets")]:
            del sys.modules[name]

    drop()
    yield
    drop()


def test_two_model_folders_in_one_process_each_import_their_own_modules(tmp_path: Path) -> None:
    a = load_entry_point(_model_folder(tmp_path / "a", winner=0, outputs=2, width=8), None)
    b = load_entry_point(_model_folder(tmp_path / "b", winner=2, outputs=3, width=16), None)
    assert a.class_names == ["cat", "dog"] and b.class_names == ["cat", "dog", "fox"]
    assert (a.module.width, b.module.width) == (8, 16)
    x = torch.zeros(1, 3, 4, 4)
    assert a.module(x).argmax(1).tolist() == [0] and b.module(x).argmax(1).tolist() == [2]
    assert Path(sys.modules["helper"].__file__).parent == tmp_path / "b"  # the last one loaded
    # the first folder loaded again gets its own modules back, and a folder loaded twice keeps its own
    again = load_entry_point(f"{tmp_path / 'a' / 'model.py'}:build", None)
    assert again.class_names == ["cat", "dog"] and again.module.width == 8
    assert Path(sys.modules["nets.layers"].__file__).parent == tmp_path / "a" / "nets"
    assert load_entry_point(f"{tmp_path / 'a' / 'model.py'}:build", None).module.width == 8


def test_two_model_files_of_one_name_pickle_each_their_own_classes(tmp_path: Path) -> None:
    """``Wrapped`` is defined in each ``model.py``: the first file's class no longer pickled once the
    second took the module name they shared."""
    a = load_entry_point(_model_folder(tmp_path / "a", winner=0, outputs=2, width=8), None)
    b = load_entry_point(_model_folder(tmp_path / "b", winner=1, outputs=2, width=16), None)
    assert pickle.loads(pickle.dumps(a.module)).width == 8
    assert pickle.loads(pickle.dumps(b.module)).width == 16


def test_a_module_imported_from_elsewhere_is_left_where_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only another model folder's modules move: the user's own ``extra``, a name the model's folder
    holds too, stays in ``sys.modules`` (and its own ``extra`` is not imported meanwhile)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "extra.py").write_text("WHOSE = 'mine'\n")
    monkeypatch.syspath_prepend(str(mine))
    monkeypatch.delitem(sys.modules, "extra", raising=False)
    import extra  # type: ignore[import-not-found]

    spec = _model_folder(tmp_path / "a", winner=0, outputs=2, width=8)
    (tmp_path / "a" / "extra.py").write_text("WHOSE = 'the model folder'\n")
    assert load_entry_point(spec, None).class_names == ["cat", "dog"]
    assert sys.modules["extra"] is extra and extra.WHOSE == "mine"
    monkeypatch.delitem(sys.modules, "extra")


@pytest.mark.slow  # two inference jobs
def test_two_jobs_of_the_python_api_label_with_each_their_own_model(tmp_path: Path) -> None:
    inp = one_bright_image(tmp_path, 3, 0)
    winners = {"a": 0, "b": 1}
    for job, winner in winners.items():
        spec = _model_folder(tmp_path / "models" / job, winner=winner, outputs=2, width=8)
        result = annotate(JobConfig(
            job_name=job, input=str(inp), output_root=str(tmp_path / "out"), label_attribute="animal",
            task_type="image-classification", method="inference",
            options={"model": spec, "allow_root": str(tmp_path)}))
        assert result.status == "COMPLETED", result.error
        lines = [orjson.loads(line) for line in Path(result.output_manifest).read_bytes().splitlines()]
        assert [line["animal"] for line in lines] == [winner] * 3, lines


def test_what_a_model_folder_does_not_import_stays_the_other_folders(tmp_path: Path) -> None:
    """A folder holding ``nets/`` that its model does not import: the first folder's ``nets`` and
    ``nets.layers`` come back; one importing only ``nets`` gets no stranger's ``nets.layers`` under it."""
    load_entry_point(_model_folder(tmp_path / "a", winner=0, outputs=2, width=8), None)
    first = sys.modules["nets.layers"]
    (tmp_path / "b" / "nets").mkdir(parents=True)
    (tmp_path / "b" / "nets" / "__init__.py").write_text("")
    (tmp_path / "b" / "model.py").write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(3, 2)\n")
    load_entry_point(f"{tmp_path / 'b' / 'model.py'}:build", None)
    assert sys.modules["nets.layers"] is first
    (tmp_path / "b" / "model.py").write_text("import nets\nimport torch\n\n\ndef build():\n    return torch.nn.Linear(3, 2)\n")
    load_entry_point(f"{tmp_path / 'b' / 'model.py'}:build", None)
    assert Path(sys.modules["nets"].__file__).parent == tmp_path / "b" / "nets"
    assert "nets.layers" not in sys.modules


def test_a_model_folder_above_another_imports_its_own_modules(tmp_path: Path) -> None:
    """``sub/helper.py``, loaded first by the model in ``sub``, lies under the folder above too: it
    was taken for that folder's own ``helper`` and left in place, so the model there got ``sub``'s
    classifier (two outputs, not three) without an error."""
    inner = load_entry_point(_model_folder(tmp_path / "a" / "sub", winner=0, outputs=2, width=8), None)
    outer = load_entry_point(_model_folder(tmp_path / "a", winner=2, outputs=3, width=16), None)
    assert inner.class_names == ["cat", "dog"] and outer.class_names == ["cat", "dog", "fox"]
    assert (inner.module.width, outer.module.width) == (8, 16)
    assert Path(sys.modules["helper"].__file__).parent == tmp_path / "a"


def test_a_model_that_fails_to_load_leaves_the_earlier_folders_modules_in_place(tmp_path: Path) -> None:
    """A factory that raises after its folder's ``helper`` was imported left that helper in
    ``sys.modules`` where the earlier model's was: the earlier model's later ``import helper`` (a
    lazy one, in ``forward``) got the failed folder's code."""
    from totask_manifest._errors import UsageError

    load_entry_point(_model_folder(tmp_path / "a", winner=0, outputs=2, width=8), None)
    first = sys.modules["helper"]
    spec = _model_folder(tmp_path / "b", winner=2, outputs=3, width=16)
    (tmp_path / "b" / "model.py").write_text(MODEL + "\n\ndef broken():\n    raise RuntimeError('no weights')\n")
    with pytest.raises(UsageError, match="the factory failed: RuntimeError: no weights"):
        load_entry_point(spec.replace(":build", ":broken"), None)
    assert sys.modules["helper"] is first and sys.modules["nets.layers"].WIDTH == 8
