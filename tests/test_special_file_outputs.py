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

from tests.jobs_helpers import quick_start_job, run_cli
from tests.jobs_helpers import refused_in_one_line as refused
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
