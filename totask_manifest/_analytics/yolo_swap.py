"""A local YOLO folder's dataset entries replaced by a staged export's, so that no ``kill -9``
leaves a folder that mixes two exports.

The dataset is five entries of the folder (``labels/`` and four top files); no rename replaces
five names at once, and the folder itself cannot be swapped (it also holds the user's
``images/``). Moving label files one by one into an existing ``labels/`` left, after a
``kill -9``, old and new label files side by side (and a re-export with fewer images kept the
old extra ones for good). So the swap is ordered, and journaled in the stage:

1. the names to move in are written to ``<stage>/.swap`` (synced) before anything moves;
2. every entry of the previous export is renamed into ``<stage>/.old/`` (``index.jsonl`` first);
3. only then are the new entries renamed into the folder (``index.jsonl`` last).

At every moment the folder holds entries of one export only, never both, and ``index.jsonl``
is there only when its whole export is. The next export to the folder (under its lock) settles
what a killed one left with ``recover``: nothing new moved in yet -> the old entries go back (the
previous export whole again); else the rest of the new ones move in (the killed export whole).
A swap stopped by an error instead (a rename or a sync failing) undoes its own moves before the
error goes on, so the previous export is whole again and the stage, ``.old`` with it, can go.

Where the folder cannot be locked (a network file system where ``flock`` fails) a stage found
may be a live export's, so ``settle_unlocked`` decides by who wrote it (``<stage>/.owner``, the
job lease's holder record): on this host, a gone process's stage is settled at once and a live
one's export refused; otherwise a swap left half done is settled once it is older than the lease
timeout (a swap is a few renames), and refused until then, saying why and when to try again.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time

from .._errors import UsageError
from .._storage import fsync_dir, redact_url

#: the dataset's entries, in the order they move in (out: the reverse): ``index.jsonl``, which
#: names every label file, is the last in and the first out
ENTRIES = ("labels", "images.txt", "classes.txt", "data.yaml", "index.jsonl")
#: in the stage: the names to move in, written before the first move
PLAN = ".swap"
#: in the stage: the previous export's entries, kept until the swap is done
OLD = ".old"
#: in the stage of an export that could not lock the folder: who writes it (``note_owner``)
OWNER = ".owner"


def swap(root: str, stage: str) -> None:
    """The staged entries to their names in ``root``, the previous export's (every entry of
    ``ENTRIES``, written again or not) out of the way first: the folder then holds exactly what
    this export wrote."""
    names = [name for name in ENTRIES if os.path.lexists(os.path.join(stage, name))]
    old = os.path.join(stage, OLD)
    moved: list[tuple[str, str]] = []
    try:  # from the journal on: a journal left by a failed write would keep the stage for recover
        with open(os.path.join(stage, PLAN), "wb") as f:
            f.write("".join(name + "\n" for name in names).encode())
            f.flush()
            os.fsync(f.fileno())
        os.mkdir(old)
        fsync_dir(stage)
        for name in reversed(ENTRIES):
            if os.path.lexists(os.path.join(root, name)):
                os.rename(os.path.join(root, name), os.path.join(old, name))
                moved.append((os.path.join(root, name), os.path.join(old, name)))
        fsync_dir(old)
        fsync_dir(root)
        for name in names:
            os.rename(os.path.join(stage, name), os.path.join(root, name))
            moved.append((os.path.join(stage, name), os.path.join(root, name)))
        fsync_dir(root)
    except BaseException:
        _undo(root, stage, moved)
        raise
    os.unlink(os.path.join(stage, PLAN))  # done: what is left in the stage is only to remove
    with contextlib.suppress(OSError):  # empty on a first export; else removed with the stage
        os.rmdir(old)


def _undo(root: str, stage: str, moved: list[tuple[str, str]]) -> None:
    """A swap stopped by an error (a rename or sync that failed): its moves undone, newest first,
    so the previous export is whole in the folder again (the stage, ``.old`` included, is removed
    afterwards). Where a move back fails too, the journal stays: ``settled`` says False, the stage
    is kept and the next export's ``recover`` settles the folder."""
    try:
        for src, dst in reversed(moved):
            os.rename(dst, src)
        fsync_dir(root)
        os.unlink(os.path.join(stage, PLAN))
    except OSError:
        pass


def settled(stage: str) -> bool:
    """Whether ``stage`` holds no journal of a swap left half done (then it may be removed)."""
    return not os.path.lexists(os.path.join(stage, PLAN))


def recover(root: str, stage: str) -> None:
    """A killed export's ``stage`` (found under the folder's lock): the folder back to one export
    whole (see the module docstring), then the stage removed."""
    try:
        with open(os.path.join(stage, PLAN), "rb") as f:
            names = [name for name in f.read().decode(errors="replace").splitlines() if name in ENTRIES]
    except FileNotFoundError:  # killed before its swap began: the folder was never touched
        names = None
    if names is not None:
        moved_in = any(not os.path.lexists(os.path.join(stage, name)) for name in names)
        source = stage if moved_in else os.path.join(stage, OLD)
        for name in names if moved_in else ENTRIES:
            path, target = os.path.join(source, name), os.path.join(root, name)
            if os.path.lexists(path) and not os.path.lexists(target):
                with contextlib.suppress(OSError):
                    os.rename(path, target)
        fsync_dir(root)
    shutil.rmtree(stage, ignore_errors=True)


def note_owner(stage: str) -> None:
    """Record this process as the writer of ``stage`` (for a folder without locks)."""
    from .._jobs.holder import Holder  # on use: only where the folder has no locks

    with open(os.path.join(stage, OWNER), "wb") as f:
        f.write(Holder.me("convert").to_json())
        f.flush()
        os.fsync(f.fileno())


def settle_unlocked(root: str, stage: str, shown: str, why: str) -> None:
    """A stage found in a folder this export could not lock (``why``: flock's error): settled
    (``recover``) when its export is surely gone, else left alone when the folder is untouched
    (no swap begun), else refused (``UsageError``) naming the folder, the reason and what to do."""
    from .._jobs.holder import Holder  # on use: only where the folder has no locks
    from .._jobs.lease import lease_timeout

    holder = None
    with contextlib.suppress(OSError), open(os.path.join(stage, OWNER), "rb") as f:
        holder = Holder.from_json(f.read())
    if holder is not None and holder.on_this_host():
        if holder.gone_reason(math.inf) is None:
            raise UsageError(f"another convert ({holder.describe()}) is writing the YOLO folder {redact_url(shown)}; "
                             "wait for it to end, or write to another folder")
        recover(root, stage)
        return
    if settled(stage):  # no swap begun: the folder is one export whole; the stage may be a live one's
        return
    try:
        age = time.time() - os.stat(os.path.join(stage, PLAN)).st_mtime
    except FileNotFoundError:  # its swap ended since
        return
    timeout = lease_timeout()
    if age >= timeout:
        recover(root, stage)
        return
    who = f"by {holder.describe()}" if holder is not None else "by an export that did not record its process"
    raise UsageError(
        f"cannot write the YOLO folder {redact_url(shown)}: {os.path.basename(stage)} holds a swap begun {age:.0f} s "
        f"ago {who}, and locks are not supported on that file system ({why}), so whether that export still "
        f"runs cannot be told; try again in {math.ceil(timeout - age)} s (a swap unfinished after {timeout:g} s, "
        "TOTASK_LEASE_TIMEOUT, is settled as a killed export's), or write to a folder on a local disk")
