"""A model endpoint that answers off the protocol on every batch is a configuration failure.

A real endpoint on 127.0.0.1, the CLI in a real subprocess: an endpoint that answers 200 with an
HTML page (a proxy's login page, a wrong path on a web server), with one prediction fewer than
the images, or with predictions that are not objects is wrong for every batch, as one answering
403 is. Its lines fail with ``model-error``, so the job stops after the first 32 (README, *Fail
fast on a systematic failure*), where before they were ``failed`` and the job sent every batch of
the input to it, failing each line apart. Probabilities of 3.0 were clamped to 1 and written as a
sure class (confidence 0.6667 against 0.5); they fail the same way. An endpoint's ``{"error": ...}`` for one image stays
that image's failure.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.jobs_helpers import run_cli
from tests.support.http_server import LocalHTTPServer
from totask_manifest._failure_rules import FAIL_FAST_LINES, rule_of

LINES = 48


def answer(kind: str):
    async def endpoint(request: web.Request) -> web.Response:
        images = (await request.json())["images"]
        if kind == "html":
            return web.Response(text="<html><body>Please sign in</body></html>", content_type="text/html")
        if kind == "one-fewer":
            preds: list = [{"probabilities": [0.1, 0.9]} for _ in images[1:]]
        elif kind == "logits-as-probabilities":
            preds = [{"probabilities": [3.0, 0.5]} for _ in images]
        elif kind == "nan":  # json.dumps writes NaN, which is not JSON
            preds = [{"logits": [float("nan"), 0.5]} for _ in images]
        else:
            preds = ["dog" for _ in images]
        return web.json_response({"predictions": preds, "class_names": ["cat", "dog"]})
    return endpoint


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "said"), [
    ("html", "response is not JSON"),
    ("one-fewer", "7 predictions for 8 images"),
    ("not-objects", "a prediction must be an object"),
    ("logits-as-probabilities", "a prediction's probabilities[0] is 3, not between 0 and 1"),
    ("nan", "response is not JSON: NaN at byte 30"),
])
def test_an_endpoint_off_the_protocol_stops_the_job_after_32_lines(tmp_path: Path, kind: str, said: str) -> None:
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://bucket/{i}.jpg"}) + b"\n" for i in range(LINES)))
    with LocalHTTPServer(answer(kind)) as server:
        r = run_cli("annotate", str(manifest), "--job-name", "ep", "--label-attribute", "cls",
                    "--task-type", "image-classification", "--method", "inference", "--model", server.url("predict"),
                    "--batch-size", "8", "--output", str(tmp_path / "out"), env={"TOTASK_MODEL_AUTHORIZATION": ""})
    assert r.returncode == 1, r.stderr
    assert "failed with 'model-error', which points at the job's configuration" in r.stderr, r.stderr
    assert said in r.stderr and "Traceback" not in r.stderr
    job = tmp_path / "out" / "ep"
    failures = [orjson.loads(x) for x in (job / "failures.jsonl").read_bytes().splitlines()]
    assert len(failures) == FAIL_FAST_LINES < LINES and {f["rule"] for f in failures} == {"model-error"}
    state = orjson.loads((job / "job.json").read_bytes())
    assert state["status"] == "FAILED" and state["metrics"]["stand_by"] == LINES - FAIL_FAST_LINES


def test_the_rules_of_an_endpoint_answer() -> None:
    """The fast lane's share: which endpoint reasons point at the endpoint, which at one image."""
    shown = "http://127.0.0.1:8080/predict"
    assert rule_of(f"model endpoint {shown}: response is not JSON: unexpected character") == "model-error"
    assert rule_of(f"model endpoint {shown}: 7 predictions for 8 images") == "model-error"
    assert rule_of(f"model endpoint {shown}: 1 prediction for 2 images") == "model-error"  # counted in the singular
    assert rule_of(f"model endpoint {shown}: no 'predictions' list for 8 images") == "model-error"
    assert rule_of("model endpoint: a prediction must be an object, got a string") == "model-error"
    assert rule_of("model endpoint: HTTP 403: denied (http://127.0.0.1:8080/predict)") == "model-error"
    assert rule_of("model endpoint: a prediction's probabilities[0] is 3, not between 0 and 1") == "model-error"
    assert rule_of("model endpoint, for this image: cannot open s3://b/x.jpg") == "failed"  # one image's data


def test_probabilities_outside_0_to_1_are_refused_not_clamped() -> None:
    from totask_manifest._errors import JobError
    from totask_manifest._models.heads import head_for

    head = head_for("image-classification")
    refused = head.from_json({"probabilities": [3.0, 0.5]})
    assert isinstance(refused, JobError) and "probabilities[0] is 3, not between 0 and 1" in str(refused)
    assert isinstance(head.from_json({"probabilities": [0.5, float("nan")]}), JobError)
    assert head.from_json({"probabilities": [1.0000001, 0.0]})["logits"][1] < -15  # float rounding: kept


@pytest.mark.parametrize(("body", "said"), [
    (b'{"predictions": [{"logits": [NaN, 1]}]}', "NaN at byte 30 (JSON has no NaN or Infinity"),
    (b'{"predictions": [{"logits": [1, -Infinity]}]}', "-Infinity at byte 33 (JSON has no NaN or Infinity"),
    (b"<html>sign in</html>", "unexpected character"),
])
def test_an_answer_that_is_not_json_says_why(body: bytes, said: str) -> None:
    """Python's json.dumps writes a model's NaN as ``NaN``: the answer read 'not JSON: unexpected
    character ... column 30', which looks like JSON to the endpoint's author."""
    from totask_manifest._models.runners import not_json_reason

    with pytest.raises(orjson.JSONDecodeError) as caught:
        orjson.loads(body)
    assert said in not_json_reason(body, caught.value), not_json_reason(body, caught.value)
