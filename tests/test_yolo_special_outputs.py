"""A YOLO export's folder goes through the special-file checks a file output goes through.

``convert m OUT --to yolo`` writes a folder of files, so ``refuse_file_output`` was skipped for it
and nothing took its place: a FIFO, a device or a regular file given as OUT failed only when the
export made its folder, after the whole manifest was read (a FIFO or ``/dev/null`` called "a
file"); a new name in ``/dev`` became a folder of label files among the system's devices, exit 0;
and a FIFO or socket where a label file, ``classes.txt`` or ``index.jsonl`` goes was moved aside
and removed by the swap, exit 0, or (``index.jsonl``, read to judge the folder) hung the export
waiting for a writer. Each is refused in one line, exit 2, before anything is read or written.
The nodes are made in ``tmp_path``; ``/dev`` is a stand-in there (the real one is never written).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from tests.jobs_helpers import quick_start_job, run_cli
from tests.jobs_helpers import refused_in_one_line as refused
from totask_manifest import _storage
from totask_manifest._analytics.yolo_dataset import manifest_to_yolo
from totask_manifest._cli import main
from totask_manifest._errors import StorageError

#: what a folder output that is no folder is refused with, after "cannot write OUT: it is "
NOT_A_FOLDER = "not a folder, and the export writes a folder of files there; give a folder's path"


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick start job's output manifest: 49 lines labeled under ``boxes``."""
    return quick_start_job(tmp_path_factory.mktemp("job"), "yolo-special", "convert")


@pytest.fixture
def broken(labeled: Path, tmp_path: Path) -> Path:
    """``labeled`` with a last line that is not JSON: a convert that reads the manifest before it
    judges its output stops there (exit 1), one that judges the output first never gets to it."""
    path = tmp_path / "broken.manifest"
    path.write_bytes(labeled.read_bytes() + b"not json\n")
    return path


def _one_line(done) -> str:
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


def test_a_regular_file_as_the_folder_is_refused_before_the_manifest_is_read(broken: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    out.write_bytes(b"the user's own file\n")
    line = _one_line(run_cli("convert", str(broken), str(out), "--to", "yolo", timeout=60))
    assert line == f"totask-manifest convert: error: cannot write {out}: it is a file, {NOT_A_FOLDER}"
    assert out.read_bytes() == b"the user's own file\n"


@pytest.mark.parametrize("link", [False, True], ids=["fifo", "link-to-fifo"])
def test_a_fifo_as_the_folder_is_refused_before_the_manifest_is_read(broken: Path, tmp_path: Path,
                                                                    link: bool) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "dataset" if link else fifo
    if link:
        out.symlink_to(fifo)
    line = _one_line(run_cli("convert", str(broken), str(out), "--to", "yolo", timeout=60))
    kind = "a link to a FIFO" if link else "a FIFO"
    assert line == f"totask-manifest convert: error: cannot write {out}: it is {kind}, {NOT_A_FOLDER}"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_in_proc_is_refused_before_the_manifest_is_read(broken: Path) -> None:
    """It failed only when the export made its stage there (``not a writable folder``), after the read."""
    line = _one_line(run_cli("convert", str(broken), "/proc/self/fd", "--to", "yolo", timeout=60))
    assert line == ("totask-manifest convert: error: cannot write /proc/self/fd: it is a name in /proc, the "
                    "kernel's folder of process files, not a place for an output; give a path outside /proc")


@pytest.fixture
def devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for ``/dev`` in ``tmp_path`` (the real one is never written to), with a
    RAM-disk-like folder ``shm`` below it."""
    folder = Path(os.path.realpath(tmp_path)) / "dev"
    (folder / "shm").mkdir(parents=True)
    monkeypatch.setattr(_storage, "DEVICE_FOLDER", str(folder))
    return folder


def test_dev_and_a_name_in_it_are_refused_and_a_folder_below_it_written(capsys: pytest.CaptureFixture,
                                                                        labeled: Path, devices: Path) -> None:
    """A new name in ``/dev`` became a folder of label files among the system's devices, exit 0."""
    for out, where in ((devices / "yolo", f"a name in {devices}"), (devices, str(devices))):
        line = refused(capsys, ["convert", str(labeled), str(out), "--to", "yolo"])
        assert line == (f"totask-manifest convert: error: cannot write {out}: it is {where}, the system's folder "
                        f"of devices, not a place for an output; give a path outside {devices}")
    assert sorted(p.name for p in devices.iterdir()) == ["shm"]
    assert main(["convert", str(labeled), str(devices / "shm" / "yolo"), "--to", "yolo"]) == 0
    capsys.readouterr()
    assert (devices / "shm" / "yolo" / "index.jsonl").is_file()


@pytest.fixture
def exported(labeled: Path, tmp_path: Path) -> Path:
    """An earlier export of ``labeled``: the folder a re-export replaces the entries of."""
    out = tmp_path / "dataset"
    assert run_cli("convert", str(labeled), str(out), "--to", "yolo", timeout=60).returncode == 0
    return out


def _node(path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """A FIFO or a bound socket at ``path``, where a regular file of the export was."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        return
    held = socket.socket(socket.AF_UNIX)
    held.bind(str(path))
    request.addfinalizer(held.close)


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, any other node's kind."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else stat.filemode(os.lstat(p).st_mode)[0]
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("entry", ["labels/img_000.txt", "classes.txt", "index.jsonl"])
def test_a_node_where_the_export_writes_a_file_is_refused_untouched(labeled: Path, exported: Path, entry: str,
                                                                    kind: str, request: pytest.FixtureRequest) -> None:
    """It was moved aside and removed with the stage, exit 0; a FIFO at ``index.jsonl`` hung the
    export (it reads that file to judge the folder). As a real process: nothing opens the FIFO."""
    _node(exported / entry, kind, request)
    before = _snapshot(exported)
    line = _one_line(run_cli("convert", str(labeled), str(exported), "--to", "yolo", timeout=60))
    what = {"fifo": "a FIFO", "socket": "a socket"}[kind]
    assert line == (f"totask-manifest convert: error: cannot write {exported}: {entry} is {what}, not a regular "
                    "file, and the export would replace it with its own; move it away or write to another folder")
    assert _snapshot(exported) == before


def test_the_export_itself_refuses_a_fifo_in_labels(labeled: Path, exported: Path,
                                                    request: pytest.FixtureRequest) -> None:
    """The Python API's export, with no ``convert`` before it, makes the check under its lock."""
    _node(exported / "labels" / "img_001.txt", "fifo", request)
    before = _snapshot(exported)
    with pytest.raises(StorageError, match=r": labels/img_001.txt is a FIFO, not a regular file, and the export"):
        manifest_to_yolo(str(labeled), str(exported))
    assert _snapshot(exported) == before
