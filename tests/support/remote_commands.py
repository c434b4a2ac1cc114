"""The commands that read a manifest in byte ranges, as argv for ``totask_manifest._cli.main``: the
remote-input tests run each of them over one faulty server's URL."""

from __future__ import annotations

from pathlib import Path


def range_reading_commands(url: str, out: Path) -> dict[str, list[str]]:
    """``validate``, ``stats`` and a file job over ``url`` (the job's folder under ``out``)."""
    return {
        "validate": ["validate", url],
        "stats": ["stats", url],
        "annotate": ["annotate", url, "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                     "object-detection", "--method", "file", "--url-key", "ann", "--output", str(out)],
    }
