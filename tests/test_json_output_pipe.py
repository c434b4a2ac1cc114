"""``--format json`` piped to a reader that leaves early (``validate --format json | head -1``):
141, as the text form and the README say. The document was one write larger than the pipe's
buffer; the buffered writer reported the first, partial write as all of it, the broken pipe was
never raised, and the command exited 1 (the validation's code) with its JSON cut."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.jobs_helpers import REPO


def test_validate_json_to_a_reader_that_closes_early_exits_141(tmp_path):
    manifest = tmp_path / "manybad.manifest"
    manifest.write_text("".join(f'{{"x": {i}}}\n' for i in range(20000)))  # each line an error: a long report
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", "validate", str(manifest), "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.read(100).startswith(b"{")  # as head -1: one line read, then the pipe closed
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert b"Traceback" not in err and b"Broken pipe" not in err, err
