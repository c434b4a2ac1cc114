"""Running the CLI on a pseudo-terminal, as a user at a shell does: what it draws there (the
progress bar, colours) differs from what it writes to a pipe or a file."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_on_terminal(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """Run ``python -m totask_manifest ARGS`` with stderr on a new terminal; its exit code and
    every byte it wrote there."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=secondary, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
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
    code = proc.wait(timeout=timeout)
    os.close(primary)
    return code, seen


def job_on_terminal(args: list[str], *, preexec=None) -> tuple[subprocess.Popen, int, bytearray]:
    """``python -m totask_manifest ARGS`` in a session of its own, stdin, stdout and stderr on a new
    terminal (``preexec``: run in the child, e.g. to make it the controlling one); the process, the
    terminal's primary end (close it to close the terminal) and what the terminal has shown, read
    by a thread until it closes."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "totask_manifest", *args],
        stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True, preexec_fn=preexec,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"},
    )
    os.close(secondary)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # closed
                return
            if not data:
                return
            seen.extend(data)

    threading.Thread(target=drain, daemon=True).start()
    return proc, primary, seen


def close_after_progress(proc: subprocess.Popen, primary: int, seen: bytearray, job_folder: Path, parts: int) -> None:
    """Close the terminal (``job_on_terminal``'s) once the job has written ``parts`` checkpoint
    parts and drawn its bar: a user who walks away from a job that is well under way."""
    from totask_manifest._jobs.layout import JobLayout

    try:
        layout, deadline = JobLayout(str(job_folder)), time.monotonic() + 60
        while len(layout.parts()) < parts or b"lines/s" not in seen:
            assert proc.poll() is None, bytes(seen)
            assert time.monotonic() < deadline, f"not {parts} checkpoint part(s) and a bar in 60 s"
            time.sleep(0.01)
    finally:
        os.close(primary)
