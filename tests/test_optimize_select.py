"""The optimize search's decisions on synthetic rows, its recipes and its input parsing (no model, no runtime)."""

from __future__ import annotations

import re

import pytest

from yolo_optim.errors import OptimError
from yolo_optim.optimize.api import parse_budget
from yolo_optim.optimize.recipe import load_recipe, parse_sizes, recipe_names
from yolo_optim.optimize.search import SearchInputs, prune_goals
from yolo_optim.optimize.select import BenchRow, choose, kept_precisions

RECIPES = ("openvino-cpu", "onnxruntime-cpu", "openvino-gpu", "openvino-npu", "tensorrt-gpu", "tensorrt-jetson")


def row(model: str, precision: str, ms: float, map50_95: float, imgsz: int = 256) -> BenchRow:
    from yolo_optim.core.results import LatencyStats

    return BenchRow(key=f"{model}|{precision}|{imgsz}", run_id="r", model=model, model_path=f"{model}.pt",
                    model_sha256=None, target=f"openvino-cpu:{precision}", backend="openvino", device="cpu",
                    precision=precision, imgsz=imgsz, status="ok", map50_95=map50_95,
                    inference=LatencyStats.from_samples([ms]))


SOURCE = [row("source", "fp32", 40.0, 0.500), row("source", "bf16", 20.0, 0.499), row("source", "int8", 19.5, 0.480)]
PRUNED = [row("pruned-2x", "bf16", 10.0, 0.492), row("pruned-2x", "int8", 9.0, 0.470)]


def test_int8_no_faster_than_bf16_is_dropped_with_a_note():
    kept, notes = kept_precisions(SOURCE, "inference", min_gain=0.05)
    assert [r.precision for r in kept] == ["fp32", "bf16"]
    assert len(notes) == 1 and notes[0].startswith("int8 at 256 px (19.50 ms") and "bf16 is kept" in notes[0]
    assert "not at least 5% faster than bf16 (20.00 ms" in notes[0]  # 2.5% faster: the threshold, not "no faster"
    kept, notes = kept_precisions(SOURCE, "inference", min_gain=0.0)  # any gain counts: int8 stays
    assert [r.precision for r in kept] == ["fp32", "bf16", "int8"] and not notes


def test_without_budget_the_fastest_within_max_drop():
    rows = SOURCE + PRUNED
    assert choose(rows, SOURCE[0], "inference", None, 0.01).row.key == PRUNED[0].key  # 0.492 >= 0.500 - 0.01
    assert choose(rows, SOURCE[0], "inference", None, 0.05).row.key == PRUNED[1].key
    assert choose(rows, SOURCE[0], "inference", None, 0.0).row.key == SOURCE[0].key


def test_with_budget_the_most_accurate_within_it():
    rows = SOURCE + PRUNED
    assert choose(rows, SOURCE[0], "inference", 25.0, 0.01).row.key == SOURCE[1].key
    assert choose(rows, SOURCE[0], "inference", 12.0, 0.01).row.key == PRUNED[0].key
    assert choose(rows, SOURCE[0], "inference", 40.0, 0.01).row.key == SOURCE[0].key  # within, inclusive


def test_an_unmet_budget_names_the_closest_and_what_it_would_take():
    c = choose(SOURCE + PRUNED, SOURCE[0], "inference", 5.0, 0.01)
    assert c.status == "budget_unmet" and c.row is None and c.closest.key == PRUNED[1].key
    assert "no variant runs within 5 ms" in c.message and "at least 9.00 ms" in c.message


def test_an_unmet_budget_prints_how_far_pruning_would_go(capsys, tmp_path):
    from yolo_optim.optimize.api import OptimizeResult, _print_outcome

    c = choose(SOURCE + PRUNED, SOURCE[0], "inference", 5.0, 0.01)
    failed = ("prune: pruned-4x (latency:openvino-cpu:bf16:4x) failed: latency:openvino-cpu:bf16:4x cannot be met: "
              "the source runs in 20.00 ms and the most pruned model this allows (max_layer_ratio=0.8) in 8.00 ms")
    dropped = "int8 at 256 px (19.50 ms, mAP50-95 0.4800) is not at least 5% faster than bf16"
    r = OptimizeResult(c.status, None, None, None, SOURCE[0], c.closest, None, tmp_path, c.message, (dropped, failed))
    _print_outcome(r, "inference", 5.0)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Budget not met: no variant runs within 5 ms") and out[1] == f"  {failed}"
    assert len(out) == 3 and out[2] == f"Report: {tmp_path / 'report.md'}"


def test_failed_rows_are_never_chosen():
    broken = BenchRow(key="x", run_id="r", model="pruned-3x", model_path="p.pt", model_sha256=None,
                      target="openvino-cpu:int8", backend="openvino", device="cpu", precision="int8", imgsz=256,
                      status="failed", error="RuntimeError: boom")
    assert choose([*SOURCE, broken], SOURCE[0], "inference", 100.0, 0.01).row.key == SOURCE[0].key


def inputs(budget: str | None, goals: str) -> SearchInputs:
    from dataclasses import replace

    recipe = replace(load_recipe("openvino-cpu"), prune_targets=goals)
    return SearchInputs(source="s.pt", source_sha256="0", data="d.yaml", data_sha256="0", runtime="openvino-cpu",
                        recipe=recipe, imgsz=256, sizes=(), budget=parse_budget(budget), metric="inference", batch=8,
                        device="cpu", workers=0, seed=0)


def test_prune_goals_at_the_deploy_precision():
    fastest = SOURCE[1]  # bf16, 20 ms
    goals, notes = prune_goals(inputs(None, "1.6x,budget,flops:0.5"), fastest, "inference", None)
    # a speed-up goal stays relative: pruning divides the source's latency it measures beside its candidates
    assert goals == [("pruned-1.6x", "latency:openvino-cpu:bf16:1.6x", 0.5), ("pruned-flops0.5", "flops", 0.5)]
    goals, _ = prune_goals(inputs("10ms", "budget,2x"), fastest, "inference", 10.0)  # 9 ms (margin 0.9), 10 ms differ
    # a budget asks the speed-up it needs of the source as the search timed it: 20 ms / 9 ms
    assert [g[1] for g in goals] == ["latency:openvino-cpu:bf16:2.222x", "latency:openvino-cpu:bf16:2x"]
    goals, _ = prune_goals(inputs("10ms", "budget,2.2x"), fastest, "inference", 10.0)  # 9 and 9.09 ms: one model
    assert [g[1] for g in goals] == ["latency:openvino-cpu:bf16:2.222x"]
    assert goals[0][0] == "pruned-10ms"
    goals, notes = prune_goals(inputs("30ms", "budget"), fastest, "inference", 30.0)
    assert goals == [] and "already runs in 20.00 ms" in notes[0]
    # a relative budget, resolved against the source's fp32 latency once measured, names the candidate by fraction
    goals, _ = prune_goals(inputs("0.25x", "budget"), fastest, "inference", 0.25 * 40.0)
    assert goals == [("pruned-0.25x", "latency:openvino-cpu:bf16:2.222x", 0.5)]


@pytest.mark.parametrize("name", RECIPES)
def test_every_packaged_recipe_loads_and_documents_every_key(name):
    from yolo_optim.paths import cfg_dir

    recipe = load_recipe(name)
    assert recipe.target == name
    text = (cfg_dir() / "recipes" / f"{name}.yaml").read_text()
    keys = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(keys) == len(recipe.to_dict())
    for line in keys:
        assert re.match(r"^[a-z_0-9]+:.*  # \((str|int|float|bool)(, optional)?\) \S", line), line


def test_recipe_names_and_errors(tmp_path):
    assert set(RECIPES) <= set(recipe_names())
    with pytest.raises(OptimError, match="no recipe for target=torch-cpu"):
        load_recipe("torch-cpu")
    bad = tmp_path / "r.yaml"
    bad.write_text("precisions: fp32,fp64\n")
    with pytest.raises(OptimError, match="precisions=fp32,fp64"):
        load_recipe("openvino-cpu", str(bad))
    bad.write_text("prune_targets: 0.5x\n")
    with pytest.raises(OptimError, match="'0.5x' is not understood"):
        load_recipe("openvino-cpu", str(bad))
    # the fine-tuning batch: the recipe's own, or the command's when the recipe says 0
    bad.write_text("finetune_batch: 8\n")
    assert load_recipe("openvino-cpu", str(bad)).prune_batch(16) == 8
    bad.write_text("finetune_batch: 0\n")
    assert load_recipe("openvino-cpu", str(bad)).prune_batch(16) == 16
    bad.write_text("finetune_batch: -8\n")
    with pytest.raises(OptimError, match="finetune_batch"):
        load_recipe("openvino-cpu", str(bad))


def test_budget_and_sizes_parsing():
    assert parse_budget("8ms").ms == 8.0 and parse_budget("8").ms == 8.0 and parse_budget(8.5).ms == 8.5
    assert parse_budget("0.008s").ms == pytest.approx(8.0) and parse_budget(None) is None
    half = parse_budget("0.5x")
    assert half.ms is None and half.fraction == 0.5 and half.resolve(12.0) == 6.0
    assert parse_budget("8ms").resolve(100.0) == 8.0
    for bad in ("0ms", "-1ms", "fast", "8 fps", "0x"):
        with pytest.raises(OptimError, match="not a positive latency"):
            parse_budget(bad)
    with pytest.raises(OptimError, match="fraction under 1"):
        parse_budget("1.5x")
    assert parse_sizes("224, 192,224") == [224, 192] and parse_sizes(None) == []
    with pytest.raises(OptimError, match="multiple of 32"):
        parse_sizes("200")


def test_a_pruning_task_is_known_by_its_sensitivity_table_s_content_not_its_path(tmp_path):
    from yolo_optim.optimize.candidates import PruneTask, task_digest, task_folder

    def task(table):
        return PruneTask(name="pruned-2x", model="m.pt", model_sha256="a", data="d.yaml", data_sha256="b",
                         target="flops", ratio=0.5, imgsz=256, options={"sensitivity_table": str(table)})

    first = tmp_path / "run" / "sensitivity.csv"
    first.parent.mkdir()
    first.write_text("group,ratio,map\nmodel.2,0.5,0.31\n")
    moved = tmp_path / "moved" / "sensitivity.csv"  # the run folder copied elsewhere
    moved.parent.mkdir()
    moved.write_bytes(first.read_bytes())
    assert task_digest(task(first)) == task_digest(task(moved))
    assert task_folder(tmp_path, task(first)).name == task_folder(tmp_path, task(moved)).name
    moved.write_text("group,ratio,map\nmodel.2,0.5,0.29\n")  # other probes: the pruning must run again
    assert task_digest(task(first)) != task_digest(task(moved))


def test_side_by_side_figures_replace_the_ones_timed_apart_and_keep_them(tmp_path):
    from dataclasses import replace

    from yolo_optim.optimize.candidates import Timing
    from yolo_optim.optimize.retime import apply_retime, retime_task

    rows = []
    for r in SOURCE:  # an artifact on disk for each, as the benchmark leaves them
        art = tmp_path / f"{r.precision}_openvino_model"
        art.mkdir()
        rows.append(replace(r, artifact=str(art)))
    timing = Timing(1, 5, 0.1, 0, "inference")
    task = retime_task("side-by-side", "openvino-cpu", timing, rows + [replace(SOURCE[0], key="gone",
                                                                               artifact=str(tmp_path / "gone"))])
    assert [a[0] for a in task.artifacts] == [r.key for r in rows]  # a missing artifact cannot be timed again
    assert retime_task("x", "openvino-cpu", Timing(1, 5, 0.1, 0, "end_to_end"), rows) is None
    assert retime_task("x", "openvino-cpu", timing, rows[:1]) is None  # nothing to compare it with

    def stats(ms: float) -> dict:
        return {"runs": 5, "median_ms": ms, "p90_ms": ms, "p99_ms": ms, "mean_ms": ms, "std_ms": 0.0, "min_ms": ms,
                "max_ms": ms}

    # the sequential figures made int8 look faster; side by side it is slower than bf16, and is dropped
    retimed = apply_retime(rows, {rows[1].key: stats(18.0), rows[2].key: stats(18.5)})
    assert [r.latency() for r in retimed] == [40.0, 18.0, 18.5]
    assert retimed[1].extra["latency_sequential"]["median_ms"] == 20.0 and retimed[1].extra["timed_in_alternation"]
    assert "latency_sequential" not in retimed[0].extra  # not timed again: left as it was
    kept, _ = kept_precisions(retimed, "inference", min_gain=0.05)
    assert [r.precision for r in kept] == ["fp32", "bf16"]
    again = apply_retime(retimed, {rows[1].key: stats(17.0)})  # timed a second time: the first figure stays kept
    assert again[1].latency() == 17.0 and again[1].extra["latency_sequential"]["median_ms"] == 20.0


def test_a_fractional_budget_follows_the_final_side_by_side_reference():
    from yolo_optim.core.results import LatencyStats
    from yolo_optim.optimize.search import SearchOutcome, final_reference

    def retimed(r, ms):
        from dataclasses import replace

        return replace(r, inference=LatencyStats.from_samples([ms]))

    for budget, first_ms, expect in (("0.5x", 20.0, 25.0), ("15ms", 15.0, 15.0)):
        out = SearchOutcome(rows=[retimed(SOURCE[0], 50.0), *SOURCE[1:]], reference=SOURCE[0], budget_ms=first_ms)
        final_reference(inputs(budget, "budget"), out)
        assert out.reference is out.rows[0] and out.reference.latency() == 50.0  # the row the loop timed
        assert out.budget_ms == expect  # 0.5 x 50 ms; a budget in ms stays as given
        assert any("resolved again" in n and "0.5 x 50.00 ms" in n for n in out.notes) == (budget == "0.5x")
    out = SearchOutcome(rows=list(SOURCE), reference=SOURCE[0], budget_ms=20.0)  # not timed again: nothing moves
    final_reference(inputs("0.5x", "budget"), out)
    assert out.reference is SOURCE[0] and out.budget_ms == 20.0 and not out.notes
