"""A store that refuses the job's ``selection.bin`` (a full disk) costs the next run a scan of the
input, said once: a run reads its selection three times (resume, engine, commit), and each read
scanned the input again and said "selection not kept" again (three times in one run)."""

from __future__ import annotations

import logging

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import StorageError
from totask_manifest._jobs import scan_ranges
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.selection import LineSelection


def test_a_selection_the_store_refuses_is_scanned_and_said_once_a_run(tmp_path, monkeypatch, caplog) -> None:
    def refuse(self, url):
        raise StorageError(f"cannot write {url}: No space left on device")

    scans = []
    original_scan = scan_ranges.scan_input

    def counting_scan(*args, **kwargs):
        scans.append(args[0])
        return original_scan(*args, **kwargs)

    monkeypatch.setattr(LineSelection, "save", refuse)
    monkeypatch.setattr(scan_ranges, "scan_input", counting_scan)
    inp = write_manifest(tmp_path / "in.manifest", 12)
    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, options={"delay": 0.0})
    with caplog.at_level(logging.WARNING):
        result = api.annotate(config)
    assert result.status == "COMPLETED"
    said = [r.getMessage() for r in caplog.records if "selection not kept" in r.getMessage()]
    assert len(said) == 1 and "No space left on device" in said[0], said
    assert scans == [], scans  # the engine and the commit took what it could not keep from memory, no rescan
    assert not (tmp_path / "out" / "j" / "selection.bin").exists()
