"""The pre-processor: release lookup, deploy and readiness polling, deferred inference, the annotator."""

from __future__ import annotations

import pytest

from totask_manifest._annotators.base import Failed, Item, Labeled
from totask_manifest._annotators.synapse_preprocessor import PreProcessorAnnotator
from totask_manifest._errors import FatalSynapseError
from totask_manifest._synapse.preprocessor import (
    InferenceFailed,
    PreProcessor,
    Served,
    Timing,
    infer,
)
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import png_bytes, token_headers
from totask_manifest.testing.runs import job_run

pytest_plugins = ["totask_manifest.testing.fixtures"]


class FakeTime:
    """Sleeps that only move a clock, so 10 s polls take no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def dm_result(cls: str = "dog") -> dict:
    return {"annotations": {"image_1": [{"id": "a1", "tool": "bounding_box", "classification": {"class": cls}}]},
            "annotationsData": {"image_1": [{"id": "a1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4}}]}}


def deploys(synapse) -> list:
    return [r for r in synapse.requests_to("POST", "^/plugins/") if r.body.get("action") == "deployment"]


def test_running_serve_application_is_used_as_is(synapse, client) -> None:
    rel = synapse.add_release("det", version="3.1.0", max_batch_size=8)
    synapse.add_serve_app("det", 2, "RUNNING")
    served = PreProcessor(client, rel, 2).ensure_running()
    assert served == Served("det", "3.1.0", 8)
    assert deploys(synapse) == []
    listing = synapse.requests_to("GET", "^/serve_applications/")[0]
    assert listing.query["plugin_code"] == "det" and listing.query["job__agent"] == "2"


def test_deploys_then_polls_every_ten_seconds_until_running(synapse, client) -> None:
    rel = synapse.add_release("det", required_resources={"required_cpu_count": 2, "required_gpu_count": 1,
                                                          "num_replicas": 2})
    synapse.deploy_statuses = ["NOT_STARTED", "DEPLOYING", "DEPLOYING", "RUNNING"]
    t = FakeTime()
    waits: list[str] = []
    served = PreProcessor(client, rel, 4, sleep=t.sleep, clock=t.clock, on_wait=waits.append).ensure_running()
    assert served.code == "det"
    [deploy] = deploys(synapse)
    assert deploy.body == {"agent": 4, "action": "deployment", "params": {"num_cpus": 2, "num_gpus": 1, "num_replicas": 2},
                           "language": "ko"}
    assert t.sleeps == [10.0, 10.0, 10.0]
    assert waits[-1] == "Still waiting for pre-processor det... (20s elapsed)"
    # the agent was looked up first, as the SDK does before its capacity check
    [lookup] = synapse.requests_to("GET", "^/agents/$")
    assert lookup.query == {"id": "4"} and synapse.requests.index(lookup) < synapse.requests.index(deploy)


@pytest.mark.parametrize(
    ("resources", "params"),
    [
        ({"required_cpu_count": 2, "required_gpu_count": 0}, {"num_cpus": 2, "num_gpus": 0}),
        ({"required_cpu_count": 0.5, "required_gpu_count": 0, "memory": 2147483648},
         {"num_cpus": 0.5, "num_gpus": 0, "memory": 2147483648}),
        ({"num_cpus": 4, "num_gpus": 0, "num_replicas": 3, "memory_bytes": 1024},
         {"num_cpus": 4, "num_gpus": 0, "num_replicas": 3, "memory": 1024}),
        ({}, {"num_cpus": 1, "num_gpus": 0.1}),
        ({"required_gpu_count": 1, "num_replicas": None, "memory": None}, {"num_cpus": 1, "num_gpus": 1}),
    ],
)
def test_deploy_takes_the_releases_resources_as_given(synapse, client, resources, params) -> None:
    rel = synapse.add_release("det", required_resources=resources or {"other": 1})
    agent = synapse.add_agent(name="cpu-only")
    t = FakeTime()
    PreProcessor(client, rel, agent, sleep=t.sleep, clock=t.clock).ensure_running()
    [deploy] = deploys(synapse)
    assert deploy.body == {"agent": agent, "action": "deployment", "params": params, "language": "ko"}


def test_an_agent_lookup_that_fails_does_not_stop_the_deploy(synapse, client) -> None:
    rel = synapse.add_release("det")
    synapse.add_fault(Fault(status=404, method="GET", path="^/agents/$"))
    t = FakeTime()
    assert PreProcessor(client, rel, 3, sleep=t.sleep, clock=t.clock).ensure_running().code == "det"
    assert len(deploys(synapse)) == 1


def test_a_deployment_under_way_is_waited_for_not_repeated(synapse, client) -> None:
    rel = synapse.add_release("det")
    synapse.add_serve_app("det", 1, ["DEPLOYING", "RUNNING"])
    t = FakeTime()
    PreProcessor(client, rel, 1, sleep=t.sleep, clock=t.clock).ensure_running()
    assert deploys(synapse) == []


@pytest.mark.parametrize("status", ["DEPLOY_FAILED", "UNHEALTHY", "UNAVAILABLE"])
def test_terminal_status_fails_fast(synapse, client, status) -> None:
    rel = synapse.add_release("det")
    synapse.deploy_statuses = ["DEPLOYING", status]
    t = FakeTime()
    with pytest.raises(FatalSynapseError, match=status):
        PreProcessor(client, rel, 1, sleep=t.sleep, clock=t.clock).ensure_running()
    assert t.sleeps == [10.0]


def test_an_old_failed_application_does_not_fail_a_new_deploy(synapse, client) -> None:
    rel = synapse.add_release("det")
    synapse.add_serve_app("det", 1, "DEPLOY_FAILED")  # yesterday's failed attempt, still listed
    synapse.deploy_statuses = ["DEPLOYING", "DEPLOYING", "RUNNING"]
    t = FakeTime()
    served = PreProcessor(client, rel, 1, sleep=t.sleep, clock=t.clock).ensure_running()
    assert served.code == "det" and len(deploys(synapse)) == 1 and t.sleeps == [10.0, 10.0]
    synapse.deploy_statuses = ["DEPLOYING", "UNHEALTHY"]  # the new deploy's own failure still counts
    for app in synapse.serve_apps.values():
        app["statuses"] = ["DEPLOY_FAILED"]
    with pytest.raises(FatalSynapseError, match="UNHEALTHY"):
        PreProcessor(client, rel, 1, sleep=t.sleep, clock=t.clock).ensure_running()


@pytest.mark.slow
def test_readiness_times_out(synapse, client) -> None:
    rel = synapse.add_release("det")
    synapse.deploy_statuses = ["DEPLOYING"]
    t = FakeTime()
    with pytest.raises(FatalSynapseError, match=r"did not become ready within timeout \(600 s"):
        PreProcessor(client, rel, 1, sleep=t.sleep, clock=t.clock).ensure_running()
    assert sum(t.sleeps) == 600 and len(t.sleeps) == 60


def test_bad_release_and_failed_dispatch_are_fatal(synapse, client) -> None:
    with pytest.raises(FatalSynapseError, match="Pre-processor not found"):
        PreProcessor(client, 999, 1).ensure_running()
    synapse.releases[77] = {"id": 77, "version": "1", "config": {}}
    with pytest.raises(FatalSynapseError, match="Invalid pre-processor configuration"):
        PreProcessor(client, 77, 1).ensure_running()
    rel = synapse.add_release("det")
    synapse.add_fault(Fault(status=500, method="POST", path="^/plugins/", body={"detail": "http://internal:9000 down"}))
    with pytest.raises(FatalSynapseError) as info:
        PreProcessor(client, rel, 1).ensure_running()
    assert str(info.value) == "Pre-processor deployment dispatch failed (BackendUnavailable)"
    assert len(deploys(synapse)) == 1  # a 500 to the deployment POST is final: it is not sent twice


def test_deferred_inference_polls_with_backoff(synapse, client) -> None:
    synapse.add_release("det", version="1.0.0")
    synapse.defer_polls = 5
    synapse.inference = lambda body: dm_result()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    served = Served("det", "1.0.0", 1)
    result = client.run(infer(client.aio, served, 3, 11, "http://img/1.png", {"confidence_threshold": 0.4}, Timing(),
                              sleep=fake_sleep))
    assert result == dm_result()
    assert slept == [2.0, 3.0, 4.5, 6.75, 10.0]
    calls = synapse.requests_to("POST", "^/plugins/det/run/$")
    assert calls[0].body == {"agent": 3, "action": "inference", "version": "1.0.0", "language": "ko", "params": {
        "model": 11, "method": "post", "json": {"image_path": "http://img/1.png", "confidence_threshold": 0.4}}}
    ticket = calls[1].body["params"]["json"]["__synapse_poll__"]
    assert ticket and all(c.body["params"] == {"model": 11, "method": "post", "json": {"__synapse_poll__": ticket}}
                          for c in calls[1:])
    assert len(calls) == 6


def test_deferred_failure_and_budget(synapse, client) -> None:
    synapse.add_release("det")
    served = Served("det", "1.0.0", 1)
    synapse.defer_polls = 1
    synapse.inference = lambda body: {"__synapse_deferred__": True, "status": "failed", "error": "CUDA OOM"}
    with pytest.raises(InferenceFailed, match="deferred inference failed: CUDA OOM"):
        client.run(infer(client.aio, served, 1, 1, "u", {}, Timing(deferred_initial=0.001)))
    synapse.defer_polls = 50
    synapse.inference = lambda body: dm_result()
    with pytest.raises(InferenceFailed, match="still pending"):
        client.run(infer(client.aio, served, 1, 1, "u", {}, Timing(deferred_initial=0.01, deferred_budget=0.05)))


def test_annotator_labels_from_inference_and_fails_empty_results(synapse, files) -> None:
    rel = synapse.add_release("det", version="1.0.0", max_batch_size=4)
    synapse.add_serve_app("det", 1, "RUNNING")
    images = [files.add(f"img/{i}.png", png_bytes(50 + i, 40)) for i in range(4)]
    results = {images[0]: dm_result("dog"), images[1]: {}, images[3]: {"objects": [
        {"class_id": 0, "type": "bbox", "coordinates": {"x": 1, "y": 1, "width": 5, "height": 5},
         "properties": {"label": "cat", "confidence": 0.7}}], "image_size": [{"width": 50, "height": 40, "depth": 3}]}}

    def inference(body: dict) -> dict:
        image = body["params"]["json"]["image_path"]
        if image == images[2]:
            raise RuntimeError("model crashed")  # the server answers 500
        return results.get(image, {})

    synapse.inference = inference
    # results converted to the task type (native: convert); kept as they are is tested in test_native_documents.py
    context = job_run("j", "boxes", "object-detection",
                               {"pre_processor": rel, "agent": 1, "model": 5, "pre_processor_params": {},
                                "native": "convert"})
    items = [Item(i, i + 1, {"source-ref": url}) for i, url in enumerate(images)] + [Item(4, 5, {"source": "text"})]
    with PreProcessorAnnotator(context) as annotator:
        outcomes = annotator.annotate_batch(items)
        assert annotator.batch_size == 4
    assert isinstance(outcomes[0], Labeled)
    assert outcomes[0].value["image_size"] == [{"width": 50, "height": 40, "depth": 3}]  # read from the image
    assert outcomes[0].metadata["class-map"] == {"0": "dog"}
    assert isinstance(outcomes[1], Failed) and outcomes[1].reason.startswith("TASK_INFERENCE_EMPTY_RESULT")
    assert isinstance(outcomes[2], Failed) and "500" in outcomes[2].reason
    assert isinstance(outcomes[3], Labeled) and outcomes[3].value["annotations"][0]["width"] == 5
    assert isinstance(outcomes[4], Failed) and "no image" in outcomes[4].reason
    # the image host was asked for images, without any Synapse credential
    assert files.requests and token_headers(files.requests) == []
    assert all("authorization" not in r.headers and "synapse-access-token" not in r.headers for r in files.requests)
