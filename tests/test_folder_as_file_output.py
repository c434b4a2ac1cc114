"""A folder that exists where a command writes one file (``export -o exports``): the atomic write
only failed at its final rename, after the whole work (every task listed and fetched, every line
read). It is refused up front, in one line naming the path, exit 2, with nothing asked of Synapse."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

LINE = ('{"source-ref": "a.jpg", "c": 1, "c-metadata": {"class-name": "x", "job-name": "j", "human-annotated": "no", '
        '"type": "groundtruth/image-classification", "creation-date": "2024-01-01T00:00:00"}}\n')


def _refused(done, folder, what: str = "a folder") -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    last = done.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].endswith(f"error: cannot write {folder}: it is {what}, not a regular file; "
                                               "give the file's name (a name inside it, say)"), done.stderr
    assert "Traceback" not in done.stderr


def test_export_into_a_folder_is_refused_before_synapse_is_asked(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    folder = tmp_path / "exports"
    folder.mkdir()
    done = run_cli("export", "--project", str(pid), "-o", str(folder))
    _refused(done, folder)
    assert synapse.requests_to("GET", "^/sdk/tasks/$") == [] and list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["labeled", "convert", "report"])
def test_a_file_output_that_is_a_folder_is_refused_in_one_line(tmp_path, command) -> None:
    manifest = tmp_path / "m.manifest"
    manifest.write_text(LINE)
    folder = tmp_path / "out"
    folder.mkdir()
    argv = {"labeled": ("labeled", str(manifest), "--label-attribute", "c", "-o", str(folder)),
            "convert": ("convert", str(manifest), str(folder), "--to", "coco", "--label-attribute", "c"),
            "report": ("report", str(tmp_path), "-o", str(folder))}[command]
    _refused(run_cli(*argv), folder)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["labeled", "convert"])
def test_a_link_to_a_folder_is_called_a_link_to_a_folder(tmp_path, command) -> None:
    """A link to a folder was refused as "it is a folder": the user, seeing a link there, was told
    of a folder; the refusal names what stands at the path, and the link and its folder are kept."""
    manifest = tmp_path / "m.manifest"
    manifest.write_text(LINE)
    folder = tmp_path / "out"
    folder.mkdir()
    link = tmp_path / "linkdir"
    link.symlink_to(folder, target_is_directory=True)
    argv = {"labeled": ("labeled", str(manifest), "--label-attribute", "c", "-o", str(link)),
            "convert": ("convert", str(manifest), str(link), "--to", "coco", "--label-attribute", "c")}[command]
    _refused(run_cli(*argv), link, "a link to a folder")
    assert link.is_symlink() and list(folder.iterdir()) == []
