"""Builders for Synapse tests: clients with short backoffs, seeded projects, finished job folders.

``seed_tasks`` fills a project whose data units name real files on a ``FileServer``; ``make_job``
writes a finished job folder (``job.json`` + output manifest) from an export, as the job engine
would.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .._jobs.config import JobConfig
from .._jobs.state import JobState
from .._jobs.status import COMPLETED
from .._synapse.settings import SynapseSettings
from .._synapse.sync_client import SynapseClient
from .file_server import FileServer
from .synapse_server import SynapseServer

TOKEN = "tok-5ecret-abc123"
LABEL = "boxes"
CLASSES = ("cat", "dog", "bird")


def fast_client(server: SynapseServer, **options: Any) -> SynapseClient:
    settings = SynapseSettings(host=server.url, access_token=TOKEN)
    return SynapseClient(settings, **{"backoff": 0.01, "max_backoff": 0.05, "retries": 2, **options})


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 60, 90)).save(buf, "PNG")
    return buf.getvalue()


def objects_doc(i: int) -> dict:
    """A ``synapse-objects`` label file for task number ``i``: ``1 + i % 3`` boxes."""
    return {"objects": [
        {"id": f"obj_{k:03d}", "class_id": k % len(CLASSES), "type": "bbox",
         "coordinates": {"x": 5 + k, "y": 7 + i, "width": 20 + k, "height": 10 + i},
         "properties": {"confidence": 0.9, "label": CLASSES[k % len(CLASSES)]}}
        for k in range(1 + i % 3)
    ]}


def seed_tasks(server: SynapseServer, files: FileServer, n: int, *, project_id: int | None = None,
               label: Callable[[int], Any] = objects_doc, **task_fields: Any) -> int:
    """A project of ``n`` tasks; each data unit has ``image_1`` (a PNG) and ``annotation_data``."""

    def url(i: int, spec: str) -> str:
        if spec == "image_1":
            return files.add(f"images/{i}.png", png_bytes(64 + i, 48))
        return files.add(f"labels/{i}.json", label(i))

    return server.seed(n, file_url=url, project_id=project_id, **task_fields)


def gt_label(i: int) -> tuple[dict, dict]:
    """A Ground Truth bounding-box value and metadata for line ``i``."""
    n = 1 + i % 3
    value = {"image_size": [{"width": 64 + i, "height": 48, "depth": 3}],
             "annotations": [{"class_id": k % 3, "left": 5 + k, "top": 7, "width": 20, "height": 10} for k in range(n)]}
    metadata = {"objects": [{"confidence": 0.9} for _ in range(n)],
                "class-map": {str(k % 3): CLASSES[k % 3] for k in range(n)},
                "type": "groundtruth/object-detection", "human-annotated": "no",
                "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    return value, metadata


def make_job(root: Path, export_manifest: Path, *, name: str = "job", status: str = COMPLETED,
             fail_lines: frozenset[int] = frozenset()) -> Path:
    """A finished job over ``export_manifest``: every line labeled under ``boxes`` except
    ``fail_lines`` (1-based), which get a ``failure-reason`` as the engine writes them."""
    state = JobState(JobConfig(name, str(export_manifest), str(root), LABEL, "object-detection"), status=status)
    job = Path(state.layout.job_url)
    out = Path(state.layout.output_manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, raw in enumerate(export_manifest.read_bytes().splitlines(), start=1):
        record = orjson.loads(raw)
        if number in fail_lines:
            record[LABEL + "-metadata"] = {"failure-reason": "fetch: 404 Not Found", "type": "groundtruth/object-detection"}
        else:
            record[LABEL], record[LABEL + "-metadata"] = gt_label(number)
        lines.append(orjson.dumps(record))
    out.write_bytes(b"\n".join(lines) + b"\n")
    state.save()  # the job.json the engine writes, with this status
    return job


def seeded_export(server: SynapseServer, files: FileServer, client: SynapseClient, root: Path, n: int,
                  **task_fields: Any) -> tuple[int, Path]:
    """``n`` tasks seeded (``seed_tasks``) and exported to ``root/export.manifest``: the project and the
    manifest, what a job is made over (``make_job``)."""
    from .._synapse.export import export_tasks  # on use: the builders serve tests that never export

    pid = seed_tasks(server, files, n, **task_fields)
    export = root / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return pid, export


def applied_job(server: SynapseServer, files: FileServer, client: SynapseClient, root: Path, n: int,
                **task_fields: Any) -> tuple[Path, list[int]]:
    """``n`` tasks seeded (``task_fields``: e.g. their ``data``), exported, labeled by a finished
    job (``make_job``) and applied once: the job folder and the task ids in order."""
    from .._synapse.apply import apply_job  # on use: the builders serve tests that never apply

    pid, export = seeded_export(server, files, client, root, n, **task_fields)
    job = make_job(root, export)
    applied = apply_job(str(job), client=client).totals["applied"]
    if applied != n:
        raise AssertionError(f"{applied} of {n} tasks applied")
    return job, sorted(t["id"] for t in server.project_tasks(pid))


def lines_naming(names: list[str], job_name: str) -> list[dict]:
    """One box line per class name (class id = its index), each line's metadata naming the job
    ``job_name``: for the views that show names (``stats``, ``evaluate``, ``report``)."""
    return [{"source-ref": f"s3://b/{i}.jpg",
             "boxes": {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                       "annotations": [{"class_id": i, "left": 1, "top": 1, "width": 2, "height": 2}]},
             "boxes-metadata": {"class-map": {str(i): name}, "type": "groundtruth/object-detection",
                                "human-annotated": "no", "job-name": job_name,
                                "creation-date": "2024-01-01T00:00:00.000000"}} for i, name in enumerate(names)]


def token_headers(records: list, token: str = TOKEN) -> list:
    """Requests that carried ``token`` anywhere in their headers."""
    return [r for r in records if any(token in v for v in r.headers.values())]


def env_without_tokens() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
