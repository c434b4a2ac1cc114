"""`--ray-*` counts out of range are refused before the job exists, as `--ray-actors 0` is.

`--ray-batch-size 0` and `--ray-num-cpus 0` were taken for "not given" (the default was used,
nothing said), and `--ray-num-cpus -2` created the job, started Ray and ended it FAILED with
Ray's own `ValueError: Resource quantities must be nonnegative`, exit 1: a mistake in a flag,
reported as a failed job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .jobs_helpers import REPO, run_cli


@pytest.mark.parametrize(("flag", "value", "name"), [
    ("--ray-batch-size", "0", "batch_size"),
    ("--ray-num-cpus", "0", "num_cpus"),
    ("--ray-num-cpus", "-2", "num_cpus"),
])
def test_a_ray_count_below_one_is_a_usage_error_before_the_job_exists(tmp_path: Path, flag: str, value: str,
                                                                       name: str) -> None:
    sample = REPO / "sample_data"
    done = run_cli("annotate", str(sample / "manifest.jsonl"), "--job-name", "j", "--task-type",
                   "image-classification", "--method", "inference", "--model", str(sample / "models" / "shapes-classifier.pt"),
                   "--allow-root", str(sample), "--output", str(tmp_path / "out"), "--engine", "ray", flag, value)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and value in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_the_environment_variables_are_held_to_the_same_rule(tmp_path: Path) -> None:
    from totask_manifest._engines.base import get_engine
    from totask_manifest._errors import UsageError

    with pytest.raises(UsageError, match="num_cpus must be at least 1"):
        get_engine("ray", num_cpus=0)
    with pytest.raises(UsageError, match="batch_size must be at least 1"):
        get_engine("ray", batch_size=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTASK_RAY_BATCH_SIZE", "0")
        with pytest.raises(UsageError, match="batch_size must be at least 1"):
            get_engine("ray")
