"""A ``convert`` stopped part way, as real subprocesses: Ctrl-C during a YOLO export leaves none of
its label files or folders (a user's files in the folder stay), and what a ``kill -9`` leaves
(a hidden ``.tmp-*`` temporary, which no process can remove as it dies) is removed by the next
``convert`` to the same place. A temporary a live writer holds is never removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest._analytics.convert import convert
from totask_manifest._stale_temporaries import TEMPORARY_GRACE_S, remove_stale_temporaries
from totask_manifest._storage import AtomicWriter

META = {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.9}], "type": "groundtruth/object-detection",
        "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
LABEL = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
         "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}]}


def boxes(path: Path, n: int) -> Path:
    """``n`` labeled images spread over 200 x 7 folders (a YOLO export makes a folder for each)."""
    with path.open("wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"source-ref": f"s3://b/ds/f{i % 200}/g{i % 7}/img{i}.jpg", "boxes": LABEL,
                                  "boxes-metadata": META}) + b"\n")
    return path


def _sigint_as_a_terminal_gives_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a runner in the background hands it down ignored
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # and one under ``nohup``, SIGHUP


def start_convert(src: Path, dst: Path, to: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "totask_manifest", "convert", str(src), str(dst), "--to", to],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=src.parent,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_sigint_as_a_terminal_gives_it)


def wait_for(check, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120
    while not check():
        assert proc.poll() is None, f"convert ended before {what}: {proc.communicate()[1]!r}"
        assert time.monotonic() < deadline, f"no {what} after 120 s"
        time.sleep(0.01)


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".tmp-*"))


@pytest.mark.slow
def test_ctrl_c_during_a_yolo_export_leaves_none_of_its_files_or_folders(tmp_path: Path) -> None:
    """Before: the label files went, but the hundreds of folders made for them stayed, empty."""
    src = boxes(tmp_path / "in.manifest", 6000)
    dst = tmp_path / "ds"
    (dst / "images").mkdir(parents=True)
    (dst / "images" / "x.jpg").write_bytes(b"mine")  # the user's, there before
    proc = start_convert(src, dst, "yolo")
    wait_for(lambda: any(dst.rglob("*.txt")), proc, "a label file")  # staged in a hidden folder
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.decode().strip() == "totask-manifest convert: interrupted"
    left = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert left == ["images", "images/x.jpg"]


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_during_a_yolo_export_cleans_up_as_ctrl_c_does(tmp_path: Path, sent: int) -> None:
    """``timeout``, ``docker stop`` and systemd stop a command with SIGTERM; a closed terminal with
    SIGHUP. Before: convert died of either at once (exit -15, -1), leaving its whole hidden
    ``.tmp-yolo-*`` stage in the user's folder."""
    src = boxes(tmp_path / "in.manifest", 6000)
    dst = tmp_path / "ds"
    dst.mkdir()
    (dst / "notes.txt").write_bytes(b"mine")
    proc = start_convert(src, dst, "yolo")
    wait_for(lambda: any(dst.rglob("*.txt")) and len(list(dst.rglob("*.txt"))) > 1, proc, "a label file")
    proc.send_signal(sent)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sent, err
    assert err.decode().strip() == "totask-manifest convert: interrupted"
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == ["notes.txt"]


@pytest.mark.slow
@pytest.mark.parametrize(("to", "out", "lines"), [("parquet", "out.parquet", 30000), ("yolo", "ds", 3000)])
def test_what_a_killed_convert_left_is_removed_by_the_next_one(tmp_path: Path, to: str, out: str,
                                                               lines: int) -> None:
    src = boxes(tmp_path / "in.manifest", lines)
    dst = tmp_path / out
    proc = start_convert(src, dst, to)
    wait_for(lambda: temporaries(tmp_path), proc, "temporary")
    proc.kill()
    proc.communicate(timeout=60)
    left = temporaries(tmp_path)
    assert left, "kill -9 left no temporary: nothing to test"
    time.sleep(TEMPORARY_GRACE_S + 0.2)  # younger ones may be a writer's that has not locked it yet
    again = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(src), str(dst), "--to", to],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert again.returncode == 0, again.stderr
    assert temporaries(tmp_path) == []  # before: the killed run's stayed, hidden, for good
    assert dst.exists()


def test_a_temporary_is_removed_only_when_no_writer_holds_it(tmp_path: Path) -> None:
    dst = tmp_path / "out.json"
    aged = time.time() - TEMPORARY_GRACE_S - 10
    dead = tmp_path / ".tmp-out.json-dead1234"  # a killed writer's: unlocked
    dead.write_bytes(b"{")
    os.utime(dead, (aged, aged))
    other = tmp_path / ".tmp-other.json-dead5678"  # another output's: not this one's to remove
    other.write_bytes(b"{")
    os.utime(other, (aged, aged))
    with AtomicWriter(str(dst)) as f:  # a live writer of the same output, its temporary just as old
        f.write(b"{}")
        live = [p for p in temporaries(tmp_path) if p not in (dead, other)]
        assert len(live) == 1
        os.utime(live[0], (aged, aged))
        assert remove_stale_temporaries(str(dst)) == [str(dead)]
        assert live[0].exists()
    assert dst.read_bytes() == b"{}"  # the live writer committed all the same
    assert temporaries(tmp_path) == [other]


def test_a_fresh_temporary_that_holds_data_is_a_killed_writers(tmp_path: Path) -> None:
    """A writer locks its temporary before it writes a byte: one that holds data and no lock is a
    killed writer's however fresh. Before, ``labeled`` run again within 2 s of a ``kill -9`` kept
    the killed one's temporary (20 MB), hidden, until a later run."""
    dst = tmp_path / "out.json"
    dead = tmp_path / ".tmp-out.json-dead1234"
    dead.write_bytes(b"{")
    empty = tmp_path / ".tmp-out.json-empt1234"  # may be a writer's that has not locked it yet
    empty.touch()
    assert remove_stale_temporaries(str(dst)) == [str(dead)]
    assert empty.exists()


def test_a_yolo_export_removes_dead_temporaries_only_where_it_writes(tmp_path: Path) -> None:
    """Its own places (the folder's top, ``labels/``), its own names (``mkstemp``'s): the whole
    tree was walked and every ``.tmp-*`` in it removed, a user's notes included, and a YOLO folder
    may be ``.`` with millions of files below it. (``labels/`` itself is the export's, replaced
    whole: whatever was in it goes.)"""
    src = boxes(tmp_path / "in.manifest", 10)
    dst = tmp_path / "ds"
    dead = [dst / ".tmp-index.jsonl-dead1234", dst / "labels" / "x" / ".tmp-img0.txt-dead_567"]
    theirs = [dst / "notes" / ".tmp-draft.txt-abcd1234", dst / ".tmp-scratch"]
    aged = time.time() - TEMPORARY_GRACE_S - 10
    for path in dead + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (aged, aged))
    convert(str(src), str(dst), to="yolo", label_attribute="boxes")
    assert [p.exists() for p in dead] == [False, False]
    assert [p.exists() for p in theirs] == [True, True]


def test_a_fifo_named_as_a_temporary_is_left_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Opening a FIFO to read waits for a writer: the convert that looked at it hung for good."""
    import threading

    fifo = tmp_path / ".tmp-out.json-fifo1234"
    os.mkfifo(fifo)
    aged = time.time() - TEMPORARY_GRACE_S - 10
    os.utime(fifo, (aged, aged))
    found: list[list[str]] = []
    looker = threading.Thread(target=lambda: found.append(remove_stale_temporaries(str(tmp_path / "out.json"))),
                              daemon=True)
    looker.start()
    looker.join(10)
    if looker.is_alive():  # release it: a writer opens the FIFO
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError("remove_stale_temporaries waited on a FIFO")
    assert found == [[]] and fifo.exists()


@pytest.mark.slow
def test_on_s3_what_a_killed_convert_left_is_removed_by_the_next_one(s3, tmp_path: Path, monkeypatch) -> None:
    """On S3 nothing is locked: a temporary object older than ``OBJECT_TEMPORARY_GRACE_S`` is a
    killed writer's (its writer moves it the moment its upload completes). Before, none was
    removed: a YOLO export to S3 killed three times left three ``.tmp-*`` label objects that
    every later convert kept."""
    from totask_manifest import _stale_temporaries

    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    dead = f"{dst}/labels/f0/g0/.tmp-img0.txt-0123456789abcdef0123456789abcdef"  # what a killed writer left, deep in the folder
    fs.pipe(dead, b"0 0.1")
    convert(str(boxes(tmp_path / "in.manifest", 3)), dst, to="yolo")
    assert fs.exists(dead)  # fresh: it may be a live writer's, between its upload and its move
    monkeypatch.setattr(_stale_temporaries, "OBJECT_TEMPORARY_GRACE_S", 0.0)  # as if an hour had passed
    other = f"{dst}-other/.tmp-x-0123456789abcdef0123456789abcdef"  # beside the folder, not in it: another output's
    theirs = f"{dst}/notes/.tmp-draft.txt-0123456789abcdef0123456789abcdef"  # in the folder, not where a YOLO export writes
    fs.pipe(other, b"{")
    fs.pipe(theirs, b"{")
    convert(str(tmp_path / "in.manifest"), dst, to="yolo")
    fs.invalidate_cache()
    assert [p for p in fs.find(dst) if "/.tmp-" in p] == [theirs.removeprefix("s3://")]
    assert fs.exists(other)
    assert fs.cat(f"{dst}/classes.txt") == b"cat\n"
    manifest = f"{dst}-m/out.manifest"  # a single-file output: only its own temporaries go
    fs.pipe(f"{dst}-m/.tmp-out.manifest-0123456789abcdef0123456789abcdef", b"{")
    fs.pipe(f"{dst}-m/.tmp-outer.manifest-0123456789abcdef0123456789abcdef", b"{")
    assert _stale_temporaries.remove_stale_temporaries(manifest) == [f"{dst}-m/.tmp-out.manifest-0123456789abcdef0123456789abcdef".removeprefix("s3://")]
    assert fs.exists(f"{dst}-m/.tmp-outer.manifest-0123456789abcdef0123456789abcdef")


def outside_temporaries(folder: Path) -> list[str]:
    """What ``folder`` holds outside hidden ``.tmp-*`` temporaries (files and folders)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if not any(part.startswith(".tmp-") for part in p.relative_to(folder).parts))


@pytest.mark.slow
def test_a_killed_yolo_export_leaves_no_label_file_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    """kill -9 once label files are being written: none of them is in the folder (before: every
    finished one stayed, a dataset with no classes.txt); the next export removes what was left."""
    src = boxes(tmp_path / "in.manifest", 3000)
    dst = tmp_path / "ds"
    (dst / "images").mkdir(parents=True)
    (dst / "images" / "x.jpg").write_bytes(b"mine")
    proc = start_convert(src, dst, "yolo")
    wait_for(lambda: len(list(dst.rglob("*.txt"))) > 20, proc, "label files")
    proc.kill()
    proc.communicate(timeout=60)
    assert outside_temporaries(dst) == ["images", "images/x.jpg"]
    time.sleep(TEMPORARY_GRACE_S + 0.2)
    again = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(src), str(dst), "--to", "yolo"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert again.returncode == 0, again.stderr
    assert temporaries(dst) == []
    assert len(list((dst / "labels").rglob("*.txt"))) == 3000
    assert (dst / "classes.txt").read_text() == "cat\n" and (dst / "data.yaml").exists()


#: runs the CLI with ``at_open()`` called the moment a file named NAME is opened for writing (by
#: whatever means: a temporary of the atomic writer or a plain open); the scripts below define it
_AT_OPEN = """
import builtins, io, os, sys
name = sys.argv.pop(1)
real_os_open, real_open = os.open, builtins.open
def hit(path):
    base = os.path.basename(os.fsdecode(path))
    return base == name or base.startswith(".tmp-" + name + "-")
def os_open(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR) and hit(path):
        at_open()
    return real_os_open(path, flags, *a, **k)
def open_(file, mode="r", *a, **k):
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and hit(file):
        at_open()
    return real_open(file, mode, *a, **k)
os.open, builtins.open, io.open = os_open, open_, open_
from totask_manifest._cli import main
sys.exit(main(sys.argv[1:]))
"""

#: a SIGINT sent to itself there, as a Ctrl-C would land
SIGINT_AT_OPEN = """
import os, signal
def at_open():
    os.kill(os.getpid(), signal.SIGINT)
""" + _AT_OPEN

#: the first time, it writes the file ``HELD`` names there and waits (120 s at most) for the file
#: ``RELEASE`` names: a command held part way for as long as a test needs, whatever the machine's speed
HOLD_AT_OPEN = """
import os, time
from pathlib import Path
held, release = Path(os.environ["HELD"]), Path(os.environ["RELEASE"])
def at_open():
    if held.exists():
        return
    held.touch()
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
""" + _AT_OPEN


@pytest.mark.slow
@pytest.mark.parametrize("name", ["classes.txt", "data.yaml"])
def test_ctrl_c_as_the_last_files_are_written_leaves_no_dataset_without_them(tmp_path: Path, name: str) -> None:
    """Before: the label files, index.jsonl and images.txt were in place when classes.txt and
    data.yaml were written, so a Ctrl-C there left a dataset without them."""
    src = boxes(tmp_path / "in.manifest", 50)
    dst = tmp_path / "ds"
    (dst / "images").mkdir(parents=True)
    (dst / "images" / "x.jpg").write_bytes(b"mine")
    r = subprocess.run([sys.executable, "-c", SIGINT_AT_OPEN, name, "convert", str(src), str(dst), "--to", "yolo"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_sigint_as_a_terminal_gives_it)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip() == "totask-manifest convert: interrupted"
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == ["images", "images/x.jpg"]


@pytest.mark.slow
def test_a_second_yolo_export_to_the_same_folder_is_refused_while_one_runs(tmp_path: Path) -> None:
    """Before: both ran, and one's cleanup could remove the other's new folders and files."""
    src = boxes(tmp_path / "in.manifest", 6000)
    dst = tmp_path / "ds"
    held, release = tmp_path / "held", tmp_path / "release"
    # the first held as it writes classes.txt, its label files written: the second comes while it runs
    # (it was only started once a label file appeared, and a first export that ended before the
    # second had started Python and its imports left nothing to refuse)
    first = subprocess.Popen([sys.executable, "-c", HOLD_AT_OPEN, "classes.txt", "convert", str(src), str(dst),
                              "--to", "yolo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(REPO), "HELD": str(held), "RELEASE": str(release)})
    try:
        wait_for(held.exists, first, "classes.txt")
        second = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(src), str(dst), "--to",
                                 "yolo"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        release.touch()
    _out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert "another convert is writing" in second.stderr and str(dst) in second.stderr
    assert len(list((dst / "labels").rglob("*.txt"))) == 6000
    assert temporaries(dst) == []


def test_a_yolo_folder_being_written_is_refused_and_a_killed_exports_stage_is_removed(tmp_path: Path) -> None:
    """In-process checks of the same rules: the lock on the folder refuses a second export (exit
    2) and leaves the first one's files; a ``.tmp-yolo-*`` folder found by the lock's holder is a
    killed export's and goes; a folder that is a file is named as such."""
    from totask_manifest._analytics.yolo_output import YoloOutput
    from totask_manifest._errors import StorageError, UsageError

    src = boxes(tmp_path / "in.manifest", 5)
    dst = tmp_path / "ds"
    with YoloOutput(str(dst)) as out:
        out.write("labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
        out.write("index.jsonl", b'{"label": "labels/a.txt"}\n')  # as an export lists its label files
        with pytest.raises(UsageError, match="another convert is writing the YOLO folder") as refused:
            convert(str(src), str(dst), to="yolo", label_attribute="boxes")
        assert refused.value.exit_code == 2
    assert (dst / "labels" / "a.txt").exists() and temporaries(dst) == []
    dead = dst / ".tmp-yolo-dead1234" / "labels"
    dead.mkdir(parents=True)
    (dead / "x.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    user = dst / ".tmp-yolo-notes"  # not a name mkdtemp gives: not ours
    user.mkdir()
    convert(str(src), str(dst), to="yolo", label_attribute="boxes")
    assert temporaries(dst) == [user]
    assert len(list((dst / "labels").rglob("*.txt"))) == 5  # a.txt, the previous export's, went with it
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(StorageError, match="afile: it is a file, not a folder, and the export writes a folder"):
        convert(str(src), str(tmp_path / "afile"), to="yolo", label_attribute="boxes")
    with pytest.raises(StorageError, match="afile is a file, not a folder"):  # a file above it: the export says so
        convert(str(src), str(tmp_path / "afile" / "ds"), to="yolo", label_attribute="boxes")


#: runs the CLI and SIGKILLs it at the NTH rename or replace of a YOLO export's commit (a move
#: into or out of its ``.tmp-yolo-*`` stage): a ``kill -9`` that lands mid-swap
KILL_AT_MOVE = """
import os, signal, sys
nth, seen = int(sys.argv.pop(1)), [0]
def wrap(real):
    def move(src, dst, *a, **k):
        if "/.tmp-yolo-" in os.fsdecode(src) + os.fsdecode(dst):
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    return move
os.rename, os.replace = wrap(os.rename), wrap(os.replace)
from totask_manifest._cli import main
sys.exit(main(sys.argv[1:]))
"""


def dataset(folder: Path) -> dict[str, bytes]:
    """The files of ``folder`` outside its hidden temporaries and the user's ``images/``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".tmp-") or part == "images"
                                       for part in p.relative_to(folder).parts)}


@pytest.mark.slow
@pytest.mark.parametrize(("nth", "settled_on"), [(3, "old"), (7, "new")])
def test_a_kill_during_a_re_export_never_leaves_two_exports_mixed(tmp_path: Path, nth: int, settled_on: str) -> None:
    """Before: label files were moved one by one into the ``labels/`` of the previous export, so a
    ``kill -9`` among those moves left a folder of old and new label files, which looked whole,
    and a re-export with fewer images kept the old extra ones for good. Now (``yolo_swap``) the
    folder holds files of one export at every moment; the next export settles it on one whole
    export before anything else (``nth`` 3: the old entries were being moved out, 7: the new ones
    in), and a finished one holds exactly what it wrote."""
    old_src = boxes(tmp_path / "old.manifest", 40)
    new_src = tmp_path / "new.manifest"
    new_src.write_bytes(boxes(tmp_path / "n.manifest", 20).read_bytes()
                        .replace(b'"width":3,', b'"width":5,').replace(b'"cat"', b'"dog"'))
    expected = {}
    for name, src in (("old", old_src), ("new", new_src)):
        convert(str(src), str(tmp_path / f"ref-{name}"), to="yolo", label_attribute="boxes")
        expected[name] = dataset(tmp_path / f"ref-{name}")
    dst = tmp_path / "ds"
    convert(str(old_src), str(dst), to="yolo", label_attribute="boxes")
    (dst / "images").mkdir()
    (dst / "images" / "x.jpg").write_bytes(b"mine")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_MOVE, str(nth), "convert", str(new_src), str(dst),
                             "--to", "yolo"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = dataset(dst)
    assert left and left != expected["old"] and left != expected["new"], "the kill should land mid-swap"
    mixed = [name for name, data in left.items() if expected[settled_on].get(name) != data]
    assert not mixed, f"files of the other export beside the {settled_on} one's: {mixed[:5]}"
    assert "index.jsonl" not in left  # the folder does not pass for a whole export
    bad = tmp_path / "bad.manifest"  # the next export stops on its input, after settling the folder
    bad.write_bytes(old_src.read_bytes().replace(b'"width":3,', b'"width":30,'))
    with pytest.raises(Exception, match="reaches past"):
        convert(str(bad), str(dst), to="yolo", label_attribute="boxes")
    assert dataset(dst) == expected[settled_on] and temporaries(dst) == []
    again = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(new_src), str(dst), "--to", "yolo"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert again.returncode == 0, again.stderr
    assert dataset(dst) == expected["new"]  # 20 label files: none of the old export's 40 left
    assert (dst / "images" / "x.jpg").read_bytes() == b"mine" and temporaries(dst) == []


#: ``KILL_AT_MOVE`` on a file system without locks: every ``flock`` fails with ENOLCK
NO_LOCKS = "import errno, fcntl, os\n" \
    "def flock(fd, op):\n    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))\n" \
    "fcntl.flock = flock\n"


@pytest.mark.slow
@pytest.mark.parametrize("nth", [3, 7])  # 3: the old entries were being moved out, 7: the new ones in
def test_without_locks_a_kill_mid_swap_is_settled_by_the_next_export(tmp_path: Path, nth: int) -> None:
    """Where ``flock`` fails (some network mounts) a killed export's stage was never settled (it
    could be a live export's), and the next export refused the folder it left ("labels/ holds ...
    and no index.jsonl beside it: no export of this tool's"). The stage now names its process:
    on this host a gone one's is settled at once, as under the lock."""
    old_src, new_src = boxes(tmp_path / "old.manifest", 40), boxes(tmp_path / "new.manifest", 20)
    dst = tmp_path / "ds"
    convert(str(old_src), str(dst), to="yolo", label_attribute="boxes")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", NO_LOCKS + KILL_AT_MOVE, str(nth), "convert", str(new_src), str(dst),
                             "--to", "yolo"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(temporaries(dst)) == 1 and "index.jsonl" not in dataset(dst)
    again = subprocess.run([sys.executable, "-c", NO_LOCKS + KILL_AT_MOVE, "0", "convert", str(new_src), str(dst),
                            "--to", "yolo"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    convert(str(new_src), str(tmp_path / "ref"), to="yolo", label_attribute="boxes")
    assert dataset(dst) == dataset(tmp_path / "ref") and temporaries(dst) == []
