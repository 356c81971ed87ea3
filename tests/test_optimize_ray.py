"""`optimize address=...`: candidates run as Ray tasks on a two-node cluster started on 127.0.0.1 for the test."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def two_node_cluster(tmp_path_factory):
    from yolo_optim.optimize.cluster import local_cluster

    with local_cluster(nodes=2, cpus=1, logs=tmp_path_factory.mktemp("ray-logs")) as address:
        yield address


def test_candidates_run_as_ray_tasks_on_both_nodes(two_node_cluster, tmp_path, tiny_model, demo_data):
    import yolo_optim

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"target": "openvino-cpu", "precisions": "fp32,int8w",
                                      "prune_targets": "flops:0.3,flops:0.5", "finetune_epochs": 1,
                                      "distill": False, "prune_allocation": "sensitivity",
                                      "sensitivity_ratios": "0.5", "sensitivity_images": 8, "warmup": 1, "runs": 5,
                                      "seconds": 0.2}))
    r = yolo_optim.optimize(tiny_model, demo_data, target="openvino-cpu", imgsz=64, batch=8, recipe=str(recipe),
                            address=two_node_cluster, project=str(tmp_path / "runs"), name="ray")
    assert r.status == "ok" and r.path.is_dir()
    stages = json.loads((r.save_dir / "optimize.json").read_text())["stages"]
    assert all(s["status"] == "ok" for s in stages), stages
    assert [s["stage"] for s in stages].count("prune") == 2
    probes = [s for s in stages if s["stage"] == "sensitivity"]  # one shard of the probes per CPU of the cluster
    assert len(probes) == 2 and len({s["node"] for s in probes}) == 2, probes
    assert [s["stage"] for s in stages].count("pruned") >= 2  # each pruned model at every precision kept
    nodes = {s["node"] for s in stages}
    assert len(nodes) == 2 and all(n.startswith("ray:") for n in nodes), nodes  # both nodes took candidates
    assert {row.model for row in r.report.rows} == {"source", "pruned-flops0.3", "pruned-flops0.5"}
