"""The ToTask action read the output manifest three times before and while sending it: once to
count its lines (progress), once for its checksum (apply's check that it is the job's own), once as
apply sent it (about 0.1 s of CPU per 100 MB each). The lines are now counted in the checksum's pass
(``apply_plan.sha256_and_lines``), which apply is handed, so the file is read twice: the check must
come before the first request, since the writes go out while the file is read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._manifest.io import read_lines
from totask_manifest._synapse.apply_plan import sha256_and_lines
from totask_manifest.testing.builders import TOKEN, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ODD_FILES = [
    b"",
    b"\n",
    b'{"a":1}',
    b'{"a":1}\n',
    b'{"a":1}\n\n  \n\t\r\n{"b":2}\r\n',
    b'{"a":1}\n{"b":2}\n   ',
    b'\n\n{"a":1}\n \x0b\x0c\n{"c":3}',
    b" x \n",
]


@pytest.mark.parametrize("content", ODD_FILES)
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_lines_are_counted_as_read_lines_counts_them(tmp_path: Path, content: bytes, chunk: int) -> None:
    path = tmp_path / "out.manifest"
    path.write_bytes(content)
    expected = sum(1 for line in read_lines(str(path)) if not line.is_blank) if content else 0
    assert sha256_and_lines(str(path), chunk) == (hashlib.sha256(content).hexdigest(), expected)


def _read_bytes_so_far() -> int:
    """Bytes this process has read through read(2) and pread(2) (every thread; not sockets' recv)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _big_doc(i: int) -> dict:
    """A label file of about 16 KB (a Ground Truth attribute holds at most 20,000 characters), so the output manifest outweighs every other file a run reads."""
    return {"objects": [{"id": f"obj_{k:05d}", "class_id": k % 3, "type": "bbox",
                         "coordinates": {"x": k % 50, "y": i, "width": 20, "height": 10},
                         "properties": {"label": "cat", "note": "x" * 40}} for k in range(110)]}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads are counted through /proc/self/io")
def test_the_action_reads_its_output_manifest_twice(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 24, label=_big_doc)
    params = {"name": "Reads", "project": pid, "agent": 1, "method": "file",
              "target_specification_name": "annotation_data"}

    def refuse_apply(server, rec) -> None:  # the token refused once apply starts: the job stays COMPLETED, unapplied
        if "id__in" in rec.query:
            server.revoke(TOKEN)

    synapse.hooks.append(refuse_apply)
    assert ToTaskAction(params=params, output_root=str(tmp_path), client=client).start()["status"] == "FAILED"
    synapse.hooks.remove(refuse_apply)
    synapse.revoked.discard(TOKEN)
    output = tmp_path / "reads" / "manifests" / "output" / "output.manifest"
    size = output.stat().st_size
    assert size > 300_000 and not synapse.requests_to("PUT")

    before = _read_bytes_so_far()
    # a client made before: a new one reads the CA bundle (220 KB); annotation complete, it applies
    result = ToTaskAction(params=params, output_root=str(tmp_path), client=client).start()
    read = _read_bytes_so_far() - before

    assert result["status"] == "SUCCEEDED" and result["metrics"]["success"] == 24, result
    assert 2 * size <= read < 2.5 * size, (read, size)  # the checksum's pass (counting too), then apply's
