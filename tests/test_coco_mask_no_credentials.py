"""``convert --to coco`` of a segmentation manifest whose mask is on S3, without credentials:
exit 2 (README: a storage URL that cannot be read, ``NoCredentialsError``), as ``validate`` of an
``s3://`` input without them; it said 1, the code of invalid data, though the line is fine and the
same command works once credentials are set. The mask is in a real S3 API (moto server mode);
the CLI runs as a subprocess, with and without credentials in its environment."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from PIL import Image

from tests.jobs_helpers import run_cli
from tests.support.s3 import S3Endpoint

MAP = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "road", "hex-color": "#123456"}}


def _manifest(tmp_path: Path, s3: S3Endpoint) -> tuple[Path, str]:
    """One line: a local image, its mask in a new bucket. Returns the manifest and the mask's URL."""
    Image.new("RGB", (6, 4)).save(tmp_path / "img.jpg")
    mask = Image.new("RGB", (6, 4), (255, 255, 255))
    mask.paste((0x12, 0x34, 0x56), (0, 0, 3, 2))
    mask.save(tmp_path / "mask.png")
    url = f"{s3.new_bucket()}/masks/mask.png"
    s3.filesystem().put(str(tmp_path / "mask.png"), url)
    meta = {"internal-color-map": MAP, "type": "groundtruth/semantic-segmentation", "human-annotated": "yes",
            "creation-date": "2022-09-09T17:25:32.047919", "job-name": "labeling-job/s"}
    line = {"source-ref": str(tmp_path / "img.jpg"), "seg-ref": url, "seg-ref-metadata": meta}
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(line) + b"\n")
    return tmp_path / "m.manifest", url


def _without_credentials(tmp_path: Path) -> dict[str, str]:
    """This environment with no AWS credentials anywhere botocore looks (the endpoint kept)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    return {**env, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}


def test_a_mask_without_credentials_exits_2_as_an_input_url_does(tmp_path, s3, monkeypatch):
    src, url = _manifest(tmp_path, s3)
    assert run_cli("convert", str(src), str(tmp_path / "ok.json"), "--to", "coco").returncode == 0  # with them: works
    env = _without_credentials(tmp_path)
    for key in [k for k in os.environ if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"]:
        monkeypatch.delenv(key)  # run_cli lays env over os.environ
    r = run_cli("convert", str(src), str(tmp_path / "d.json"), "--to", "coco", env=env)
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert r.stderr == (f"totask-manifest convert: error: line 1, key 'seg-ref': cannot read {url}: NoCredentialsError: "
                        "Unable to locate credentials (set AWS credentials, e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID)\n")
    assert not (tmp_path / "d.json").exists()
    given = run_cli("validate", url.rsplit("/", 1)[0] + "/in.manifest", env=env)  # the same case, the URL given
    assert given.returncode == 2 and "NoCredentialsError" in given.stderr, given.stderr


def test_a_missing_mask_is_still_the_line_s_exit_1(tmp_path, s3):
    """The reference names no object: the data's mistake, exit 1, at the line and key."""
    src, url = _manifest(tmp_path, s3)
    s3.filesystem().rm(url)
    r = run_cli("convert", str(src), str(tmp_path / "d.json"), "--to", "coco")
    assert r.returncode == 1 and f"line 1, key 'seg-ref': no such file: {url}" in r.stderr, r.stderr
