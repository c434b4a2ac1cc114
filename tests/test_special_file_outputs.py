"""An output path where a device, a FIFO or a socket stands is refused before anything is written,
in one line, exit 2 (tester3 F1). The atomic write renames a regular file over whatever holds the
name: ``convert m /dev/full --to parquet``, ``labeled -o /dev/full`` and ``report -o /dev/full``
all said they wrote it, exit 0, and run as root they replaced the system's ``/dev/full`` with a
regular file (``-o /dev/null`` would have broken every process on the machine). The nodes here are
made in ``tmp_path``, never the real ``/dev`` ones. A symbolic link stays as it was: the output
replaces the link itself and leaves the file it pointed to alone.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, quick_start_job, run_cli
from tests.jobs_helpers import refused_in_one_line as refused
from totask_manifest import _storage
from totask_manifest._cli import main
from totask_manifest._errors import StorageError
from totask_manifest._storage import write_bytes_atomic

pytest_plugins = ["totask_manifest.testing.fixtures"]

#: each node kind: what the refusal calls it, and the ``stat`` test it must still pass afterwards
KINDS: dict[str, tuple[str, Callable[[int], bool]]] = {
    "fifo": ("a FIFO", stat.S_ISFIFO),
    "char": ("a character device", stat.S_ISCHR),
    "socket": ("a socket", stat.S_ISSOCK),
}


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick start job's output manifest: 49 lines labeled under ``boxes``."""
    return quick_start_job(tmp_path_factory.mktemp("job"), "special", "convert")


@pytest.fixture
def node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A node of the kind ``request.param`` names, in ``tmp_path/dev``."""
    folder = tmp_path / "dev"
    folder.mkdir()
    path = folder / request.param
    if request.param == "fifo":
        os.mkfifo(path)
    elif request.param == "char":
        if os.geteuid() != 0:
            pytest.skip("making a character device takes root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full's numbers
    else:
        held = socket.socket(socket.AF_UNIX)
        held.bind(str(path))
        request.addfinalizer(held.close)
    yield path


def refused_line(node: Path) -> str:
    """The end of the one line a write to ``node`` is refused in."""
    kind, _ = KINDS[node.name]
    return f"cannot write {node}: it is {kind}, not a regular file, and the output would replace it; give a regular file's path"


def assert_untouched(node: Path) -> None:
    """``node`` is still its kind, and nothing was left beside it (no temporary, no other file)."""
    _, is_kind = KINDS[node.name]
    assert is_kind(os.lstat(node).st_mode), f"{node} was replaced: {stat.filemode(os.lstat(node).st_mode)}"
    assert [p.name for p in node.parent.iterdir()] == [node.name]


@pytest.mark.parametrize("node", list(KINDS), indirect=True)
@pytest.mark.parametrize("to", ["parquet", "coco", "dm-schema-v1", "synapse-objects"])
def test_convert_refuses_a_node_for_out(capsys: pytest.CaptureFixture, labeled: Path, node: Path, to: str) -> None:
    line = refused(capsys, ["convert", str(labeled), str(node), "--to", to])
    assert line == f"totask-manifest convert: error: {refused_line(node)}"
    assert_untouched(node)


@pytest.mark.parametrize("node", ["fifo"], indirect=True)
def test_an_import_refuses_a_node_for_out(capsys: pytest.CaptureFixture, labeled: Path, tmp_path: Path,
                                          node: Path) -> None:
    """``convert --to manifest`` writes through ``write_lines``, the Python API's writer."""
    parquet = tmp_path / "in.parquet"
    assert main(["convert", str(labeled), str(parquet), "--to", "parquet"]) == 0
    capsys.readouterr()
    line = refused(capsys, ["convert", str(parquet), str(node), "--to", "manifest"])
    assert line == f"totask-manifest convert: error: {refused_line(node)}"
    assert_untouched(node)


@pytest.mark.parametrize("node", list(KINDS), indirect=True)
def test_labeled_and_report_refuse_a_node_for_o(capsys: pytest.CaptureFixture, labeled: Path, node: Path) -> None:
    line = refused(capsys, ["labeled", str(labeled), "--label-attribute", "boxes", "-o", str(node)])
    assert line == f"totask-manifest labeled: error: {refused_line(node)}"
    job = labeled.parents[2]
    line = refused(capsys, ["report", str(job), "-o", str(node)])
    assert line == f"totask-manifest report: error: {refused_line(node)}"
    assert_untouched(node)


@pytest.mark.parametrize("node", ["fifo"], indirect=True)
def test_export_refuses_a_node_before_asking_synapse(capsys: pytest.CaptureFixture, synapse, node: Path) -> None:
    line = refused(capsys, ["export", "--project", "1", "-o", str(node)])
    assert line == f"totask-manifest export: error: {refused_line(node)}"
    assert synapse.requests == []
    assert_untouched(node)


@pytest.mark.parametrize("node", ["fifo"], indirect=True)
def test_every_atomic_write_refuses_a_node(node: Path) -> None:
    """The writer every file output goes through (a job's own files included) refuses it too."""
    with pytest.raises(StorageError) as caught:
        write_bytes_atomic(f"file://{node}", b"x")
    assert str(caught.value) == refused_line(node).replace(f"write {node}", f"write file://{node}")
    assert_untouched(node)


@pytest.mark.parametrize("node", ["fifo"], indirect=True)
def test_a_real_process_refuses_the_fifo_without_waiting_on_it(labeled: Path, node: Path) -> None:
    """As a real process: no reader on the FIFO, so a command that opened it would hang."""
    r = run_cli("convert", str(labeled), str(node), "--to", "parquet", timeout=60)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.strip() == f"totask-manifest convert: error: {refused_line(node)}"
    assert_untouched(node)


def test_a_link_is_replaced_and_its_target_kept(capsys: pytest.CaptureFixture, labeled: Path, tmp_path: Path) -> None:
    """The documented rule for a link: the output replaces the link, never the file it names."""
    target = tmp_path / "kept.manifest"
    target.write_bytes(b"the user's own file\n")
    link = tmp_path / "out.manifest"
    link.symlink_to(target)
    assert main(["labeled", str(labeled), "--label-attribute", "boxes", "-o", str(link)]) == 0
    capsys.readouterr()
    assert not link.is_symlink() and len(link.read_bytes().splitlines()) == 49
    assert target.read_bytes() == b"the user's own file\n"


@pytest.mark.parametrize("node", ["fifo"], indirect=True)
def test_a_link_to_a_node_is_refused_as_the_node(capsys: pytest.CaptureFixture, labeled: Path, tmp_path: Path,
                                                 node: Path) -> None:
    """``-o /dev/stdout`` (a link to the terminal or a pipe): replacing the link breaks it for
    every later process, so it is refused as the node it names is."""
    link = tmp_path / "stdout"
    link.symlink_to(node)
    line = refused(capsys, ["labeled", str(labeled), "--label-attribute", "boxes", "-o", str(link)])
    assert line == (f"totask-manifest labeled: error: cannot write {link}: it is a link to a FIFO, not a regular "
                    "file, and the output would replace it; give a regular file's path")
    assert link.is_symlink() and os.readlink(link) == str(node)
    assert_untouched(node)


#: a chain of links in ``tmp_path`` ending in the magic ``/proc`` link the real ``/dev/stdout`` is: its
#: path as given, and what the one-line refusal says it is
PROCESS_LINKS = {
    "stdout": "a link to /proc/self/fd/1, the command's own standard output",
    "via/stdout": "a link to /proc/self/fd/1, the command's own standard output",
    "fd/1": "the command's own standard output",
    "fd/5": "the command's own descriptor 5",
}


@pytest.fixture
def process_links(tmp_path: Path) -> Path:
    """``tmp_path`` with ``stdout -> /proc/self/fd/1`` (``/dev/stdout``), ``via/stdout -> ../stdout``
    (a link to that link) and ``fd -> /proc/self/fd`` (``/dev/fd``): never the real ``/dev`` ones."""
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    (tmp_path / "via").mkdir()
    (tmp_path / "via" / "stdout").symlink_to("../stdout")
    (tmp_path / "fd").symlink_to("/proc/self/fd")
    return tmp_path


@pytest.mark.parametrize("out", list(PROCESS_LINKS))
def test_a_link_through_proc_is_refused_with_stdout_sent_to_a_file(process_links: Path, out: str) -> None:
    """``-o /dev/stdout > out.parquet`` (review15 #2): the magic link resolves to the regular file
    stdout was sent to, so the special-file check passed and the rename replaced the link itself
    (as root, the system's ``/dev/stdout``), exit 0, the output never in the file. Refused in one
    line, exit 2, every link left as it was and nothing written to the stream's file."""
    captured = process_links / "captured.txt"
    with captured.open("w") as stdout:
        r = run_cli("convert", str(REPO / "sample_data" / "manifest.jsonl"), out, "--to", "parquet",
                    cwd=process_links, stdout=stdout, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"totask-manifest convert: error: cannot write {out}: it is {PROCESS_LINKS[out]}, "
                                "not a regular file, and the output cannot replace it atomically; give a regular "
                                "file's path")
    assert captured.read_bytes() == b""
    assert os.readlink(process_links / "stdout") == "/proc/self/fd/1"
    assert os.readlink(process_links / "via" / "stdout") == "../stdout"
    assert os.readlink(process_links / "fd") == "/proc/self/fd"
    assert sorted(p.name for p in process_links.iterdir()) == ["captured.txt", "fd", "stdout", "via"]
    assert [p.name for p in (process_links / "via").iterdir()] == ["stdout"]


def test_every_atomic_write_refuses_a_link_through_proc(process_links: Path) -> None:
    """The writer a job's own files go through refuses it too, whatever the stream is here."""
    link = process_links / "via" / "stdout"
    with pytest.raises(StorageError, match=r"it is a link to /proc/self/fd/1, the command's own standard output,"):
        write_bytes_atomic(str(link), b"x")
    assert os.readlink(link) == "../stdout"


@pytest.fixture
def devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for ``/dev`` in ``tmp_path`` (the real one is never written to): the folder the
    rule names, with a RAM-disk-like folder ``shm`` below it."""
    folder = Path(os.path.realpath(tmp_path)) / "dev"
    (folder / "shm").mkdir(parents=True)
    monkeypatch.setattr(_storage, "DEVICE_FOLDER", str(folder))
    return folder


def test_a_name_in_dev_itself_is_refused(capsys: pytest.CaptureFixture, devices: Path, tmp_path: Path) -> None:
    """``-o /dev/nul`` (a misspelt device) was written as a regular file among the system's devices,
    exit 0; so is a link there to a regular file (the rename would replace the link)."""
    sample = str(REPO / "sample_data" / "manifest.jsonl")
    typo = devices / "nul"
    line = refused(capsys, ["convert", sample, str(typo), "--to", "parquet"])
    assert line == (f"totask-manifest convert: error: cannot write {typo}: it is a name in {devices}, the system's "
                    f"folder of devices, not a place for an output; give a path outside {devices}")
    target = tmp_path / "kept.parquet"
    target.write_bytes(b"the user's own file")
    (devices / "core").symlink_to(target)
    line = refused(capsys, ["convert", sample, str(devices / "core"), "--to", "parquet"])
    assert line.endswith(f"cannot write {devices / 'core'}: it is a name in {devices}, the system's folder of "
                         f"devices, not a place for an output; give a path outside {devices}")
    assert sorted(p.name for p in devices.iterdir()) == ["core", "shm"] and (devices / "core").is_symlink()
    assert target.read_bytes() == b"the user's own file"


def test_a_folder_below_dev_is_written(capsys: pytest.CaptureFixture, devices: Path) -> None:
    """``/dev/shm`` is a RAM disk people keep scratch files on: the rule is for ``/dev`` itself."""
    out = devices / "shm" / "out.parquet"
    assert main(["convert", str(REPO / "sample_data" / "manifest.jsonl"), str(out), "--to", "parquet"]) == 0
    capsys.readouterr()
    assert out.stat().st_size > 0
