"""``file://localhost/p`` is the local path ``/p`` (RFC 8089), for inputs and outputs alike: fsspec
read it as the relative path ``localhost/p``, so ``convert ... file://localhost/tmp/k.json`` wrote
``./localhost/tmp/k.json`` (exit 0), ``annotate --output file://localhost/tmp/x`` made its job there
(past the job-folder refusal), and ``validate file://localhost/...`` said "no such file". A
``file://`` URL naming another host is refused in one line (exit 2): no file system here reaches it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, sample_job_args
from totask_manifest._cli import main

SAMPLE = str(REPO / "sample_data" / "manifest.jsonl")
#: one labeled line, for ``convert --to coco``
LABELED = ('{"source-ref": "images/a.jpg", "boxes": {"image_size": [{"width": 16, "height": 12, "depth": 3}], '
           '"annotations": [{"class_id": 0, "top": 1, "left": 2, "height": 3, "width": 4}]}, "boxes-metadata": '
           '{"objects": [{"confidence": 0.9}], "class-map": {"0": "dog"}, "type": "groundtruth/object-detection", "human-annotated": "no", '
           '"creation-date": "2026-01-01T00:00:00", "job-name": "boxes"}}\n')


def localhost(path: Path | str) -> str:
    return f"file://localhost{path}"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, where nothing may land."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def one_line(capsys: pytest.CaptureFixture, argv: list[str], code: int) -> str:
    assert main(argv) == code
    _out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_localhost_outputs_and_inputs_are_local_paths(cwd: Path, tmp_path: Path, capsys) -> None:
    labeled, out = tmp_path / "in.manifest", tmp_path / "out" / "k.json"
    labeled.write_text(LABELED)
    assert main(["convert", localhost(labeled), localhost(out), "--to", "coco"]) == 0
    assert out.is_file()
    assert main(["validate", localhost(labeled)]) == 0
    assert list(cwd.iterdir()) == []  # before: ./localhost/<tmp_path>/out/k.json


def test_a_job_under_a_localhost_url_is_made_there_and_its_folder_refuses_outputs(cwd: Path, tmp_path: Path,
                                                                                   capsys) -> None:
    assert main(sample_job_args("lh", localhost(tmp_path / "jobs"))) == 0
    job = tmp_path / "jobs" / "lh"
    assert (job / "job.json").is_file() and list(cwd.iterdir()) == []
    capsys.readouterr()
    line = one_line(capsys, ["convert", SAMPLE, localhost(job / "x.json"), "--to", "coco"], 2)
    assert "is inside job folder" in line, line
    assert not (job / "x.json").exists()


@pytest.mark.parametrize("command", ["validate", "convert"])
def test_a_file_url_naming_another_host_is_refused_in_one_line(cwd: Path, tmp_path: Path, capsys,
                                                                 command: str) -> None:
    labeled = tmp_path / "in.manifest"
    labeled.write_text(LABELED)
    argv = (["validate", "file://otherhost/tmp/in.manifest"] if command == "validate"
            else ["convert", str(labeled), "file://otherhost/tmp/k.json", "--to", "coco"])
    line = one_line(capsys, argv, 2)
    assert line.endswith(f"{argv[-1] if command == 'validate' else argv[2]} names the host 'otherhost': a file:// "
                         "URL names this machine's files only (file:///path or file://localhost/path); "
                         "give a local path"), line
    assert list(cwd.iterdir()) == []


def test_a_localhost_input_resolves_its_relative_references_beside_it(cwd: Path) -> None:
    """The sample's ``annotation-ref``s are relative to the manifest: read as ``./localhost/...``
    they resolved under the working folder and every line failed."""
    from totask_manifest._fetch.urls import base_of

    assert base_of(localhost(SAMPLE)) == str(REPO / "sample_data")
