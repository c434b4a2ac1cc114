"""What a person sees from the CLI: the live bar on a pseudo-terminal (records above it, rate and
time left, no internal step name), ``--version``, help texts, messages in JSON's words, and
``--append`` summaries."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from tests.jobs_helpers import REPO, TOY, write_manifest


def screen(raw: bytes) -> list[str]:
    """The lines a terminal shows for ``raw``: ``\\r`` returns, ``ESC[K`` erases to the end,
    ``\\n`` starts a new line (a small emulator, enough for a bar that redraws in place)."""
    lines: list[list[str]] = [[]]
    col = 0
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    i = 0
    while i < len(text):
        if text.startswith("\x1b[K", i):
            del lines[-1][col:]
            i += 3
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append([])
            col = 0
        else:
            row = lines[-1]
            if col < len(row):
                row[col] = ch
            else:
                row.append(ch)
            col += 1
        i += 1
    return ["".join(r) for r in lines]


def run_on_terminal(*args: str) -> tuple[int, bytes]:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=secondary, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"})
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    code = proc.wait(timeout=60)
    os.close(primary)
    return code, seen


def test_log_records_print_above_the_bar_and_the_bar_shows_rate_and_eta(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 30)  # lines 4, 14 and 24 fail
    code, seen = run_on_terminal("annotate", str(inp), "--job-name", "tty", "--label-attribute", "cls",
                                 "--task-type", "image-classification", "--method", TOY,
                                 "--output", str(tmp_path / "out"), "--toy-delay", "0.02")
    assert code == 0
    shown = [line for line in screen(seen) if line.strip()]
    failures = [line for line in shown if "failed:" in line]
    assert len(failures) == 3
    for line in failures:  # each record on its own line, nothing of the bar glued to it
        assert re.fullmatch(r"\[task line \d+\] failed: cannot label s3://bucket/images/img\d+-bad\.jpg", line), line
    bars = [line for line in shown if "lines/s" in line]
    assert bars == [shown[-1]]  # one bar, below every record, redrawn in place
    assert re.fullmatch(r"\[#{30}\] 100\.0% 30/30  [\d,.]+ lines/s  ETA 0:00", shown[-1]), shown[-1]
    assert b"annotate_task_data" not in seen  # the step name is for Synapse's log lines, not people
    assert re.search(rb"ETA \d+:\d\d", seen)
