"""Report side on hand-made rows: the Pareto front, the results schema, tables, best(), plot and merging runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from yolo_optim.core.results import BenchRow, LatencyStats
from yolo_optim.cli import main
from yolo_optim.errors import OptimError
from yolo_optim.report.merge import merge_reports
from yolo_optim.report.pareto import pareto_front
from yolo_optim.report.report import Report
from yolo_optim.report.schema import SCHEMA_VERSION, schema_path, validate_results


def lat(ms: float) -> LatencyStats:
    return LatencyStats.from_samples([ms * 0.98, ms, ms * 1.03])


def row(model: str, target: str, ms: float | None, map_: float | None, hardware: str = "Xeon", status: str = "ok",
        run_id: str = "run-a", finished: str = "2026-01-01T00:00:00+00:00", **kw) -> BenchRow:
    backend, _, rest = target.partition("-")
    device, _, precision = rest.partition(":")
    return BenchRow(key=f"{model}|{target}|64", run_id=run_id, model=model, model_path=f"/m/{model}.pt",
                    model_sha256="0" * 64, target=target, backend=backend, device=device, precision=precision,
                    imgsz=64, status=status, hardware=hardware, inference=lat(ms) if ms else None,
                    end_to_end=lat(ms * 1.5) if ms else None, map50_95=map_, map50=map_ and min(1.0, map_ + 0.2),
                    finished=finished, **kw)


def make_report(rows: list[BenchRow], run_ids=("run-a",), cpu="Xeon") -> Report:
    runs = [{"run_id": r, "created": "2026-01-01T00:00:00+00:00", "command": "yolo-optim benchmark", "seed": 0,
             "settings": {"imgsz": 64}, "environment": {"platform": "Linux", "cpu": {"model": cpu},
                                                        "versions": {"torch": "2"}}} for r in run_ids]
    return Report(rows=rows, runs=runs)


def sample_rows() -> list[BenchRow]:
    return [row("base", "torch-cpu:fp32", 40.0, 0.50),
            row("base", "openvino-cpu:fp32", 20.0, 0.50),
            row("base", "openvino-cpu:int8", 8.0, 0.46),
            row("base", "onnxruntime-cpu:fp32", 25.0, 0.49),  # dominated by openvino fp32
            row("base", "tensorrt-gpu:fp16", None, None, hardware=None, status="skipped",
                reason="CUDA is not available")]


@pytest.mark.parametrize("points,front", [
    ([], []),
    ([(1.0, 0.5)], [0]),
    ([(10, 0.5), (5, 0.4), (20, 0.6), (12, 0.45), (5, 0.3)], [1, 0, 2]),  # (12, .45) and (5, .3) dominated
    ([(5, 0.4), (5, 0.4), (6, 0.4)], [0, 1]),  # exact duplicates both kept; slower equal-accuracy point is not
    ([(5, 0.4), (5, 0.5)], [1]),  # same speed, less accurate: dominated
])
def test_pareto_front_on_hand_made_points(points, front):
    assert pareto_front(points) == front


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = [(float(a), float(b)) for a, b in zip(rng.integers(1, 20, 60), rng.integers(0, 10, 60) / 10)]
    dominated = {i for i, (la, ma) in enumerate(pts) for lb, mb in pts
                 if lb <= la and mb >= ma and (lb < la or mb > ma)}
    assert set(pareto_front(pts)) == set(range(len(pts))) - dominated


def test_results_schema_accepts_reports_and_rejects_bad_files():
    obj = make_report(sample_rows()).to_json()
    validate_results(obj)
    assert json.loads(schema_path().read_text())["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    bad_status = copy.deepcopy(obj)
    bad_status["rows"][0]["status"] = "done"
    with pytest.raises(OptimError, match=r"rows/0/status"):
        validate_results(bad_status)
    missing = copy.deepcopy(obj)
    del missing["rows"][1]["target"]
    with pytest.raises(OptimError, match="'target' is a required property"):
        validate_results(missing)
    bad_latency = copy.deepcopy(obj)
    bad_latency["rows"][0]["inference"]["median_ms"] = -1
    with pytest.raises(OptimError, match="inference"):
        validate_results(bad_latency)
    newer = dict(obj, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(OptimError, match="upgrade yolo-optim"):
        validate_results(newer)
    with pytest.raises(OptimError, match="not yolo-optim benchmark results"):
        validate_results({"rows": []})


def test_best_pareto_and_baseline():
    rep = make_report(sample_rows())
    assert [r.target for r in rep.pareto()] == ["openvino-cpu:int8", "openvino-cpu:fp32"]
    assert rep.best(device="cpu").target == "openvino-cpu:fp32"  # most accurate, ties broken by speed
    assert rep.best(device="cpu", max_latency_ms=10).target == "openvino-cpu:int8"
    assert rep.best(device="cpu", max_latency_ms=1) is None
    assert rep.best(device="openvino-cpu", max_latency_ms=30).target == "openvino-cpu:fp32"
    with pytest.raises(OptimError, match="matches no row"):
        rep.best(device="npu")
    assert rep.baseline(rep.groups()[0]).target == "torch-cpu:fp32"
    assert rep.metric == "inference"
    rep.metric = "end_to_end"
    assert rep.best(device="cpu", max_latency_ms=14).target == "openvino-cpu:int8"  # 8 * 1.5 = 12 ms end-to-end


def test_numerical_noise_in_map_is_a_tie():
    rows = [row("m", "torch-cpu:fp32", 20.0, 0.5), row("m", "onnxruntime-cpu:fp32", 15.0, 0.500001),
            row("m", "openvino-cpu:fp32", 8.0, 0.499999)]
    rep = make_report(rows)
    assert [r.target for r in rep.pareto()] == ["openvino-cpu:fp32"]  # equal at the four decimals shown
    assert rep.best().target == "openvino-cpu:fp32"


def test_markdown_sorted_marks_pareto_speedup_and_skips(tmp_path):
    rep = make_report(sample_rows())
    rep.save(tmp_path)
    md = (tmp_path / "report.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "model" not in ln]
    assert [ln.split("|")[3].strip() for ln in table] == ["openvino-cpu", "openvino-cpu", "onnxruntime-cpu",
                                                          "torch-cpu"]  # by latency
    int8 = next(ln for ln in table if "int8" in ln)
    assert "★" in int8 and "5.00x" in int8 and "-0.0400" in int8  # 40 ms / 8 ms; 0.46 - 0.50
    assert "★" not in next(ln for ln in table if "onnxruntime" in ln)
    assert "base" in next(ln for ln in table if "torch-cpu" in ln)
    assert "tensorrt-gpu:fp16: skipped (CUDA is not available)" in md
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rep.rows) and csv_lines[0].startswith("model,target")
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "openvino-cpu" in html
    assert Report.load(tmp_path).rows == rep.rows  # results.json round-trips


def test_executed_precision_is_labelled():
    r = row("m", "openvino-cpu:fp32", 5, 0.5, executed_precision="bf16")
    assert r.precision_label() == "bf16 (asked fp32)"
    assert row("m", "openvino-cpu:fp32", 5, 0.5, executed_precision="fp32").precision_label() == "fp32"


def test_plot_is_written_and_not_blank(tmp_path):
    from PIL import Image

    from yolo_optim.report.plots import plot_pareto

    png = plot_pareto(make_report(sample_rows()), tmp_path / "pareto.png")
    pixels = np.asarray(Image.open(png).convert("L"))
    assert pixels.shape[0] > 300 and pixels.std() > 5  # axes, points and labels drawn, not an empty canvas


def _save_run(tmp_path, name, rows, run_id, cpu):
    rep = make_report(rows, run_ids=(run_id,), cpu=cpu)
    rep.save(tmp_path / name)
    return tmp_path / name


def test_merge_two_machines_and_cli(tmp_path, capsys):
    a = _save_run(tmp_path, "host", sample_rows(), "run-a", "Xeon")
    jetson = [row("base", "torch-gpu:fp32", 30.0, 0.50, hardware="Orin", run_id="run-j"),
              row("base", "tensorrt-gpu:fp16", 6.0, 0.50, hardware="Orin", run_id="run-j"),
              row("base", "tensorrt-gpu:int8", 4.0, 0.47, hardware="Orin", run_id="run-j")]
    b = _save_run(tmp_path, "jetson", jetson, "run-j", "ARM Cortex-A78AE")
    merged = merge_reports(f"{a},{b}")
    assert merged.groups() == ["cpu (Xeon)", "gpu", "gpu (Orin)"]  # "gpu": the host's skipped TensorRT row
    assert len(merged.rows) == 8 and {r["run_id"] for r in merged.runs} == {"run-a", "run-j"}
    assert merged.best(device="gpu", max_latency_ms=5).target == "tensorrt-gpu:int8"
    # a later measurement of the same variant on the same hardware replaces the earlier one
    again = _save_run(tmp_path, "host2", [row("base", "openvino-cpu:fp32", 18.0, 0.50, run_id="run-c",
                                              finished="2026-02-01T00:00:00+00:00")], "run-c", "Xeon")
    merged = merge_reports([a, again])
    ov = [r for r in merged.rows if r.target == "openvino-cpu:fp32"]
    assert len(ov) == 1 and ov[0].run_id == "run-c"

    before = (a / "results.json").read_bytes()
    out = tmp_path / "merged"
    assert main(["report", f"runs={a},{b}", f"project={out}", "name=all"]) == 0
    files = {p.name for p in (out / "all").iterdir()}
    assert {"results.json", "results.csv", "report.md", "pareto.png", "report.html"} <= files
    assert "## gpu (Orin)" in (out / "all" / "report.md").read_text()
    assert (a / "results.json").read_bytes() == before  # inputs are only read


def test_report_cli_bad_inputs(tmp_path, capsys):
    assert main(["report", f"runs={tmp_path / 'nope'}"]) == 2
    assert "holds no results.json" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text("{broken")
    assert main(["report", f"runs={tmp_path / 'x'}", f"project={tmp_path / 'out'}"]) == 2
    assert "not readable JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_report_exist_ok_reuses_the_folder_and_deletes_nothing(tmp_path, capsys):
    a = _save_run(tmp_path, "host", sample_rows(), "run-a", "Xeon")
    out = tmp_path / "reports" / "merged"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("old report")
    assert main(["report", f"runs={a}", f"project={tmp_path / 'reports'}", "name=merged", "exist_ok=True"]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"notes.txt", "results.json", "report.md", "pareto.png"} <= files
    assert (out / "notes.txt").read_text() == "mine" and "Benchmark report" in (out / "report.md").read_text()
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name or ".old" in p.name]
    # its own output as an input: read first, then its files are rewritten, nothing else goes
    assert main(["report", f"runs={out}", f"project={tmp_path / 'reports'}", "name=merged", "exist_ok=True"]) == 0
    assert (out / "notes.txt").exists() and Report.load(out).rows


def test_report_md_has_no_colour_codes(tmp_path):
    failed = row("base", "openvino-cpu:int8", None, None, status="failed",
                 error="ValueError: \x1b[34m\x1b[1mval: \x1b[0mlabels\nmissing")
    rep = make_report([*sample_rows(), failed])
    rep.save(tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "\x1b" not in md and "val: labels missing" in md


def test_readme_figures_are_what_the_results_files_render(tmp_path):
    """Every figure block of README.md is rendered from scripts/results/ (run scripts/render_readme.py)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    script = root / "scripts" / "render_readme.py"
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    stale = tmp_path / "README.md"
    stale.write_text((root / "README.md").read_text().replace("<!-- /results -->", "| 1.0 | made up |\n"
                                                                                   "<!-- /results -->", 1))
    assert subprocess.run([sys.executable, str(script), "--check", "--readme", str(stale)]).returncode == 1
    assert subprocess.run([sys.executable, str(script), "--readme", str(stale)]).returncode == 0
    assert "made up" not in stale.read_text()
