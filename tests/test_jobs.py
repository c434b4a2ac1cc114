"""Jobs through the Python API and the CLI: selection, layout, metadata, chaining, cloning,
appending, errors. Crash and resume tests are in test_resume.py."""

from __future__ import annotations

import orjson
import pytest

from tests.jobs_helpers import TOY, assert_same_output, output_of, run_cli, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import InvalidInputError, JobError, LabelAttributeError
from totask_manifest._jobs.config import JobConfig


def config(tmp_path, inp, **kw) -> JobConfig:
    base = dict(job_name="job1", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                task_type="image-classification", method=TOY, options={"fail": "bad"})
    base.update(kw)
    return JobConfig(**base)


def test_annotate_labels_selected_lines_and_keeps_the_rest(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 40, prelabeled_every=4)
    result = api.annotate(config(tmp_path, inp))
    assert result.status == "COMPLETED"
    out = output_of(tmp_path / "out", "job1").read_bytes().splitlines(keepends=True)
    src = inp.read_bytes().splitlines(keepends=True)
    assert len(out) == len(src) == 40
    labeled = failed = 0
    for i, (a, b) in enumerate(zip(src, out, strict=True)):
        rec_in, rec_out = orjson.loads(a), orjson.loads(b)
        if i % 4 == 0:  # human label present: passes through byte for byte
            assert a == b
            continue
        meta = rec_out["cls-metadata"]
        assert meta["job-name"] == "labeling-job/job1"
        assert meta["type"] == "groundtruth/image-classification"
        if "-bad" in rec_in["source-ref"]:
            failed += 1
            assert "cls" not in rec_out and "failure-reason" in meta
        else:
            labeled += 1
            assert meta["human-annotated"] == "no"
            assert len(meta["creation-date"]) == 26 and meta["creation-date"][10] == "T"
            assert rec_out["cls"] in (0, 1, 2)
        # every other key keeps its exact text
        for token in (b'"x":164.60000000000002', b'"e":1e-05', b'"big":12345678901234567890', b"caf\\u00e9"):
            assert token in b
        assert b.endswith(b"\r\n") == a.endswith(b"\r\n")
    assert result.metrics == {"total": 30, "success": labeled, "failed": failed, "routed": 0, "stand_by": 0}
    failures = [orjson.loads(x) for x in (tmp_path / "out" / "job1" / "failures.jsonl").read_bytes().splitlines()]
    assert len(failures) == failed and all("-bad" in f["source"] and f["reason"] for f in failures)
    job = orjson.loads((tmp_path / "out" / "job1" / "job.json").read_bytes())
    assert job["status"] == "COMPLETED" and job["input"]["lines"] == 40 and len(job["input"]["sha256"]) == 64


def test_chain_from_completed_job_uses_new_attribute(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 20)
    first = api.annotate(config(tmp_path, inp))
    second = api.chain(first.job_url, "second-pass")
    assert second.status == "COMPLETED"
    job = api.load_job(second.job_url)
    assert job["label-attribute"] == "second-pass" and job["chained-from"] == first.job_url
    out = output_of(tmp_path / "out", "second-pass").read_bytes().splitlines()
    prev = output_of(tmp_path / "out", "job1").read_bytes().splitlines()
    for a, b in zip(prev, out, strict=True):
        ra, rb = orjson.loads(a), orjson.loads(b)
        assert b.startswith(a[:-1])  # the previous line's bytes are kept; new keys come after
        assert {k: v for k, v in rb.items() if not k.startswith("second-pass")} == ra
        assert "second-pass-metadata" in rb


def test_chain_with_same_attribute_retries_only_failures(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 30)
    first = api.annotate(config(tmp_path, inp))
    assert first.metrics["failed"] == 3
    second = api.chain(first.job_url, "retry", label_attribute="cls", options={"fail": ""})
    assert second.metrics == {"total": 3, "success": 3, "failed": 0, "routed": 0, "stand_by": 0}
    prev = output_of(tmp_path / "out", "job1").read_bytes().splitlines(keepends=True)
    out = output_of(tmp_path / "out", "retry").read_bytes().splitlines(keepends=True)
    for a, b in zip(prev, out, strict=True):
        if b"failure-reason" in a:
            rec = orjson.loads(b)
            assert rec["cls-metadata"]["job-name"] == "labeling-job/retry" and "failure-reason" not in rec["cls-metadata"]
        else:
            assert a == b


def test_chain_from_stopped_job_defaults_to_previous_attribute(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 10)
    first = api.annotate(config(tmp_path, inp))
    from totask_manifest._jobs.job import Job

    state = Job.open(first.job_url).state
    state.status = "STOPPED"
    state.save()
    second = api.chain(first.job_url, "continue")
    assert api.load_job(second.job_url)["label-attribute"] == "cls"


def test_chain_refuses_running_job(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 5)
    first = api.annotate(config(tmp_path, inp))
    from totask_manifest._jobs.job import Job

    state = Job.open(first.job_url).state
    state.status = "RUNNING"
    state.save()
    with pytest.raises(JobError, match="resume it first"):
        api.chain(first.job_url, "next")


def test_clone_reuses_input_and_configuration(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 12)
    first = api.annotate(config(tmp_path, inp))
    again = api.clone(first.job_url, "job1-clone")
    job = api.load_job(again.job_url)
    assert job["cloned-from"] == first.job_url and job["input"]["url"] == str(inp)
    assert job["config"]["options"] == {"fail": "bad"}
    cloned = output_of(tmp_path / "out", "job1-clone")
    renamed = tmp_path / "renamed.manifest"
    renamed.write_bytes(cloned.read_bytes().replace(b"labeling-job/job1-clone", b"labeling-job/job1"))
    assert_same_output(output_of(tmp_path / "out", "job1"), renamed)


def test_append_adds_new_objects_and_skips_duplicates(tmp_path, caplog):
    inp = write_manifest(tmp_path / "in.manifest", 5, bad_every=0)
    extra = tmp_path / "extra.manifest"
    extra.write_bytes(
        b'{"source-ref":"s3://bucket/images/img00001.jpg"}\n{"source-ref":"s3://bucket/new.jpg","k":1.50}\n'
    )
    result = api.annotate(config(tmp_path, inp, append=[str(extra)]))
    out = output_of(tmp_path / "out", "job1").read_bytes().splitlines()
    assert len(out) == 6
    assert out[5].startswith(b'{"source-ref":"s3://bucket/new.jpg","k":1.50,"cls":')
    assert result.metrics["total"] == 6
    assert "1 duplicate skipped (first: " in caplog.text and "'s3://bucket/images/img00001.jpg'" in caplog.text


def test_append_reads_each_manifest_once(tmp_path, monkeypatch):
    """The combined input is written in one pass over each manifest: the input was read twice
    (once for its data objects, once to copy it), a cost the size of the input."""
    from totask_manifest._jobs import combine

    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"a.jpg"}\n\n{"source-ref":"b.jpg"}')  # no newline at the end
    extra = tmp_path / "extra.manifest"
    extra.write_bytes(b'{"source-ref":"b.jpg","x":1}\n{"source-ref":"c.jpg"}\n{"source-ref":"c.jpg"}\n')
    opened: list[str] = []
    real = combine.open_read

    def counted(url, *args, **kwargs):
        opened.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(combine, "open_read", counted)
    result = combine.combine_with_appended(str(inp), [str(extra)], str(tmp_path / "combined.manifest"), "cls")
    assert opened == [str(inp), str(extra)]
    assert (tmp_path / "combined.manifest").read_bytes() == (
        b'{"source-ref":"a.jpg"}\n\n{"source-ref":"b.jpg"}\n{"source-ref":"c.jpg"}\n')
    assert (result.added, result.skipped, result.starts) == (1, 2, [[3, str(tmp_path)]])


def test_appended_duplicates_are_the_same_image_not_the_same_text(tmp_path):
    """Relative references in an appended manifest resolve against its own folder, so
    ``images/x.jpg`` in another folder is another image. Before: compared as text, a second
    dataset laid out like the first was skipped whole as duplicates (one warning line), and the
    same image named by its absolute path was labeled twice."""
    from totask_manifest._jobs import combine

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inp = tmp_path / "a" / "in.manifest"
    inp.write_bytes(b'{"source-ref":"images/x.jpg"}\n{"source":"text"}\n')
    other = tmp_path / "b" / "more.manifest"  # another dataset, same layout
    other.write_bytes(b'{"source-ref":"images/x.jpg"}\n')
    again = tmp_path / "a" / "again.manifest"  # the input's own image, named two ways, and its text
    again.write_bytes(b'{"source-ref":"images/x.jpg"}\n{"source-ref":"%s"}\n{"source":"text"}\n'
                      % str(tmp_path / "a" / "images" / "x.jpg").encode())
    result = combine.combine_with_appended(str(inp), [str(other), str(again)], str(tmp_path / "combined.manifest"), "cls")
    assert (result.added, result.skipped) == (1, 3)
    assert (tmp_path / "combined.manifest").read_bytes() == (
        b'{"source-ref":"images/x.jpg"}\n{"source":"text"}\n{"source-ref":"images/x.jpg"}\n')
    assert result.examples[0].endswith("again.manifest line 1: 'images/x.jpg'")


def test_a_chained_inputs_appended_lines_keep_their_folder_for_duplicates(tmp_path):
    """A chained job's input holds lines an earlier job appended (``earlier``): appending their
    manifest again finds them duplicates, resolved in their own folder, not the input's."""
    from totask_manifest._jobs import combine

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inp = tmp_path / "job" / "out.manifest"
    inp.parent.mkdir()
    inp.write_bytes(b'{"source-ref":"x.jpg"}\n{"source-ref":"x.jpg"}\n')  # line 2 came from b/
    more = tmp_path / "b" / "more.manifest"
    more.write_bytes(b'{"source-ref":"x.jpg"}\n')
    result = combine.combine_with_appended(str(inp), [str(more)], str(tmp_path / "c.manifest"), "cls",
                                           input_base=str(tmp_path / "a"), earlier=[[1, str(tmp_path / "b")]])
    assert (result.added, result.skipped) == (0, 1)
    result = combine.combine_with_appended(str(inp), [str(more)], str(tmp_path / "c.manifest"), "cls",
                                           input_base=str(tmp_path / "a"))
    assert (result.added, result.skipped) == (1, 0)


def test_memory_filesystem_output_root(tmp_path):
    import fsspec

    inp = write_manifest(tmp_path / "in.manifest", 8)
    result = api.annotate(config(tmp_path, inp, output_root="memory://jobs-test"))
    fs = fsspec.filesystem("memory")
    data = fs.cat("/jobs-test/job1/manifests/output/output.manifest")
    assert len(data.splitlines()) == 8 and result.status == "COMPLETED"
    assert fs.exists("/jobs-test/job1/job.json")


def test_same_command_again_resumes_and_other_configuration_is_refused(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 3)
    first = api.annotate(config(tmp_path, inp))
    before = output_of(tmp_path / "out", "job1").read_bytes()
    again = api.annotate(config(tmp_path, inp))
    assert again.status == "COMPLETED" and again.metrics == first.metrics
    assert output_of(tmp_path / "out", "job1").read_bytes() == before
    with pytest.raises(JobError, match="already exists"):
        api.annotate(config(tmp_path, inp, label_attribute="other"))


@pytest.mark.parametrize(
    ("attr", "task_type", "rule"),
    [
        ("cls-metadata", "image-classification", "label-attribute-metadata-suffix"),
        ("masks", "semantic-segmentation", "label-attribute-ref-required"),
        ("boxes-ref", "object-detection", "label-attribute-ref-forbidden"),
        ("source-ref", "image-classification", "label-attribute-reserved"),
        ("bad_name", "image-classification", "label-attribute-pattern"),
    ],
)
def test_label_attribute_rules_refuse_the_job(tmp_path, attr, task_type, rule):
    inp = write_manifest(tmp_path / "in.manifest", 3)
    with pytest.raises(LabelAttributeError) as info:
        api.annotate(config(tmp_path, inp, label_attribute=attr, task_type=task_type))
    assert info.value.rule == rule
    assert not (tmp_path / "out" / "job1").exists()


def test_bad_input_lines_stop_the_job_before_any_work(tmp_path):
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"a"}\n{"source-ref":"b",\n{"source":"t","source-ref":"c"}\n\xff\xfe\n')
    with pytest.raises(InvalidInputError) as info:
        api.annotate(config(tmp_path, inp))
    text = str(info.value)
    assert "line 2" in text and "[line-json]" in text
    assert "line 3" in text and "[line-source]" in text
    assert "line 4" in text and "[line-utf8]" in text
    assert not (tmp_path / "out" / "job1" / "job.json").exists()


@pytest.mark.slow
def test_cli_annotate_status_and_errors(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 15)
    out = tmp_path / "out"
    r = run_cli("annotate", str(inp), "--job-name", "cli-job", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", TOY, "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert f"output manifest: {output_of(out, 'cli-job')}" in r.stdout
    assert "[annotate_task_data] Progress: 100.0% (15/15)" in r.stderr
    assert "[task line 4] failed: cannot label" in r.stderr
    s = run_cli("status", str(out / "cli-job"), "--format", "json")
    data = orjson.loads(s.stdout)
    assert data["status"] == "COMPLETED" and data["metrics"]["success"] == 13 and data["metrics"]["failed"] == 2
    bad = run_cli("annotate", str(inp), "--job-name", "x", "--label-attribute", "a-metadata", "--task-type",
                  "image-classification", "--method", TOY, "--output", str(out))
    assert bad.returncode == 2 and "label-attribute-metadata-suffix" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("annotate", str(tmp_path / "nope.manifest"), "--job-name", "y", "--task-type",
                      "image-classification", "--method", TOY, "--output", str(out))
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    nojob = run_cli("status", str(tmp_path / "nowhere"))
    assert nojob.returncode == 2 and "not a job folder" in nojob.stderr


@pytest.mark.slow
def test_cli_chain_overrides_only_given_options(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 10)
    out = tmp_path / "out"
    assert run_cli("annotate", str(inp), "--job-name", "a", "--label-attribute", "cls", "--task-type",
                   "image-classification", "--method", TOY, "--output", str(out), "--toy-fail", "img0000").returncode == 1
    # (every line failed: a job that labeled nothing is FAILED, exit 1; chain retries it)
    r = run_cli("chain", str(out / "a"), "--job-name", "b", "--label-attribute", "cls", "--toy-fail", "")
    assert r.returncode == 0, r.stderr
    job = orjson.loads((out / "b" / "job.json").read_bytes())
    assert job["config"]["options"]["fail"] == "" and job["method"] == TOY
    assert job["metrics"]["total"] == 10 - 0 and job["metrics"]["failed"] == 0


def test_chain_with_another_method_keeps_where_relative_urls_resolve(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 4, bad_every=0)
    first = api.annotate(config(tmp_path, inp, options={"fail": "", "relative_to": str(tmp_path), "timeout": 9}))
    from totask_manifest._jobs.job import Job

    state = Job.open(first.job_url).state
    state.config.method = "tests.support.toy_annotators:Other"  # as if the first job used another method
    state.save()
    second = api.chain(first.job_url, "next", method=TOY, options={"fail": ""})
    options = api.load_job(second.job_url)["config"]["options"]
    assert options == {"fail": "", "relative_to": str(tmp_path)}


def test_duplicate_label_attribute_keys_are_refused(tmp_path):
    """A job edits the last copy of a key; an earlier copy would survive beside the new value."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"a","cls":1,"cls":null}\n{"source-ref":"b","cls\\u002dmetadata":{},"cls-metadata":{}}\n'
                    b'{"source-ref":"c","x":{"cls":1},"cls":null}\n')
    with pytest.raises(InvalidInputError) as info:
        api.annotate(config(tmp_path, inp))
    text = str(info.value)
    assert "line 1, key 'cls'" in text and "line 2, key 'cls-metadata'" in text and "[duplicate-key]" in text
    assert "line 3" not in text  # the same name inside a nested object is not a duplicate


def test_resume_and_chain_work_from_another_folder(tmp_path, monkeypatch):
    inp = write_manifest(tmp_path / "in.manifest", 6)
    monkeypatch.chdir(tmp_path)
    first = api.annotate(config(tmp_path, "in.manifest", output_root="out"))
    assert first.job_url == str(tmp_path / "out" / "job1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = api.chain("../out/job1", "next")
    assert second.status == "COMPLETED" and second.job_url == str(tmp_path / "out" / "next")
    assert not (elsewhere / "out").exists()
    assert inp.exists()


def test_part_numbers_past_six_digits_keep_their_order(tmp_path):
    from totask_manifest._jobs.layout import JobLayout

    layout = JobLayout(str(tmp_path / "job"))
    folder = tmp_path / "job" / "manifests" / "intermediate"
    folder.mkdir(parents=True)
    for n in (999_999, 1_000_000, 5):
        (folder / f"part-{n:06d}.jsonl").write_bytes(b"")
    (folder / ".tmp-part-000007.jsonl-x").write_bytes(b"")
    assert [p.rsplit("/", 1)[-1] for p in layout.parts()] == [
        "part-000005.jsonl", "part-999999.jsonl", "part-1000000.jsonl"]


@pytest.mark.parametrize("through", ["python", "cli"])
def test_chain_choosing_the_other_option_of_an_exclusive_set_drops_the_inherited_one(tmp_path, through):
    """A job started with ``--name-prefix`` chained with ``--upper`` was refused ("options
    'name_prefix' and 'upper' cannot be given together"), and no flag could unset the inherited one."""
    inp = write_manifest(tmp_path / "in.manifest", 8)
    named = "tests.support.toy_annotators:NamedToy"
    first = api.annotate(config(tmp_path, inp, method=named, options={"name_prefix": "x-"}))
    if through == "python":
        assert api.chain(first.job_url, "second", options={"upper": True}).status == "COMPLETED"
    else:
        r = run_cli("chain", first.job_url, "--job-name", "second", "--upper")
        assert r.returncode == 0, r.stdout + r.stderr
    options = orjson.loads((tmp_path / "out" / "second" / "job.json").read_bytes())["config"]["options"]
    assert options["upper"] is True and options.get("name_prefix") is None, options
    lines = output_of(tmp_path / "out", "second").read_bytes().splitlines()
    names = {orjson.loads(x)["second-metadata"].get("class-name") for x in lines} - {None}
    assert names and names <= {"CAT", "DOG", "BIRD"}, names
