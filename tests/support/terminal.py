"""Running the CLI on a pseudo-terminal, as a user at a shell does: what it draws there (the
progress bar, colours) differs from what it writes to a pipe or a file."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
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
