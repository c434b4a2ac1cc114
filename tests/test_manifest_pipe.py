"""A manifest given as a pipe (``validate <(zcat in.manifest.gz)``, ``annotate /dev/stdin`` fed
by ``cat``, a FIFO): every command said ``error: File or stream is not seekable.``, naming no
file and no way forward. A manifest is read in byte ranges and a job reads its input again at its
lines' offsets (and on resume), which a pipe cannot give: each command refuses it in one line
naming the file, what it is and what to do, exit 2, nothing written. Real process substitution
in bash, the CLI a subprocess."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO

LINES = b"".join(b'{"source":"text %d"}\n' % i for i in range(20))


def _through_a_pipe(manifest: Path, *args: str) -> subprocess.CompletedProcess:
    """``totask-manifest ARGS`` with ``{}`` in them replaced by ``<(cat manifest)``, run by bash."""
    command = " ".join(f"<(cat {shlex.quote(str(manifest))})" if a == "{}" else shlex.quote(a) for a in args)
    return subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)} -m totask_manifest {command}"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args", [
    ("validate", "{}"),
    ("stats", "{}"),
    ("annotate", "{}", "--job-name", "j", "--label-attribute", "cls", "--task-type", "text-classification",
     "--method", "tests.support.toy_annotators:ToyClassifier", "--output", "OUT"),
    ("convert", "{}", "OUT", "--to", "coco", "--label-attribute", "cls"),
], ids=["validate", "stats", "annotate", "convert"])
def test_a_pipe_is_refused_in_one_line_naming_it(tmp_path: Path, args: tuple[str, ...]) -> None:
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(LINES)
    out = tmp_path / "out"
    r = _through_a_pipe(manifest, *(str(out) if a == "OUT" else a for a in args))
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert "/dev/fd/" in lines[0] and "is a pipe" in lines[0] and "write it to a file first" in lines[0], lines[0]
    assert not out.exists()
