"""The Python API used as a data engineer uses it: chaining from a job that is still running,
arguments of the wrong type or kind. Each mistake is one ``TotaskError`` naming what is wrong,
never a bare ``TypeError`` or ``AttributeError`` from deep inside, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.jobs_helpers import TOY
from totask_manifest import JobConfig, JobError, annotate, chain


def _texts(path: Path, n: int) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"source": f"text {i}"}) + b"\n" for i in range(n)))
    return path


def test_chain_from_a_job_that_is_running_says_it_is_in_use_not_resume_it(tmp_path: Path) -> None:
    """Before: ``chain`` on a live job said "RUNNING or was interrupted; resume it first" (exit 1),
    and ``resume`` was then refused as the job is in use. Now it is the in-use refusal that
    ``resume`` gives (exit 2), naming the holder."""
    seen: list[BaseException] = []

    def chain_while_running(metrics: dict[str, int]) -> None:
        if not seen and metrics["success"] + metrics["failed"] >= 1:
            try:
                chain(str(tmp_path / "out" / "first"), "second")
            except JobError as exc:
                seen.append(exc)
            else:
                seen.append(AssertionError("chain ran on a running job"))

    config = JobConfig(job_name="first", input=str(_texts(tmp_path / "in.manifest", 8)),
                       output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=1)
    result = annotate(config, on_progress=chain_while_running)
    assert result.status == "COMPLETED"
    assert len(seen) == 1 and isinstance(seen[0], JobError), seen
    message = str(seen[0])
    assert "is in use by pid" in message and "(annotate" in message, message
    assert "resume it first" not in message
    assert seen[0].exit_code == 2
    assert not (tmp_path / "out" / "second").exists()
