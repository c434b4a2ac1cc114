"""The commands that read a manifest in byte ranges, as argv for ``totask_manifest._cli.main``: the
remote-input tests run each of them over one faulty server's URL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def range_reading_commands(url: str, out: Path) -> dict[str, list[str]]:
    """``validate``, ``stats`` and a file job over ``url`` (the job's folder under ``out``)."""
    return {
        "validate": ["validate", url],
        "stats": ["stats", url],
        "annotate": ["annotate", url, "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                     "object-detection", "--method", "file", "--url-key", "ann", "--output", str(out)],
    }


def assert_refused_in_one_line(captured: Any, name: str, prefix: str, says: str, secrets: Iterable[str]) -> None:
    """``captured`` (capsys' output of command ``name``) is one error line starting ``prefix`` and
    saying ``says``, with no traceback and none of ``secrets`` in either stream."""
    err = captured.err.strip()
    assert err.startswith(prefix) and says in err, (name, err)
    assert "\n" not in err and "Traceback" not in err, (name, err)
    for word in secrets:
        assert word not in captured.err + captured.out, (name, word)
