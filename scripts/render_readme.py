"""Render the README's figure tables from the results files kept in scripts/results/.

Every table of measured figures in README.md sits between two marker comments:

    <!-- results: bench_export -->
    (generated: do not edit by hand)
    <!-- /results -->

and is rendered from `scripts/results/<name>.json`, the file the measuring script wrote (`--out`), so every figure
the README quotes can be traced to a kept file, its command and its machine. A block whose file is missing says so
and names the command that produces it. Usage:

    python scripts/render_readme.py            # rewrite the blocks in README.md
    python scripts/render_readme.py --check    # exit 1 when README.md is not what the results files render
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)

# how each results file is produced (named in a block whose file is missing)
COMMANDS = {
    "bench_export": "python scripts/bench_export.py --out runs/bench_export && cp runs/bench_export/results.json "
                    "scripts/results/bench_export.json",
    "bench_honesty": "python scripts/bench_honesty.py --out scripts/results/bench_honesty.json",
    "bench_amp": "python scripts/bench_amp.py --out scripts/results/bench_amp.json",
    "bench_amp_finetune": "python scripts/bench_amp_finetune.py",
    "bench_main_job": "python scripts/bench_main_job.py",
    "bench_int8_preset": "python scripts/bench_int8_preset.py",
    "bench_int8_scope": "python scripts/bench_int8_scope.py",
    "bench_finetune_recipe": "python scripts/bench_finetune_recipe.py",
    "bench_prune": "python scripts/bench_prune.py && cp runs/bench_prune/results.json scripts/results/bench_prune.json",
    "bench_prune_floor": "python scripts/bench_prune_floor.py --results scripts/results/bench_prune_floor.json",
    "bench_latency_goal": "python scripts/bench_latency_goal.py --results scripts/results/bench_latency_goal.json",
    "bench_tune": "python scripts/bench_tune.py",
    "demo_baseline": "python scripts/ship_demo_baseline.py RUN_DIR",
    "bench_optimize_ray": "python scripts/bench_optimize_ray.py",
    "bench_optimize": "python scripts/bench_optimize.py",
    "bench_trt_qdq": "python scripts/bench_trt_qdq.py --model a.pt --model b.pt --data data.yaml "
                     "--modelopt-site DIR",
}


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def render_bench_export(results: dict[str, Any]) -> str:
    """The export table exactly as scripts/bench_export.py prints it, with the run's settings above it."""
    head = (f"Measured by `scripts/bench_export.py` on {results.get('cpu', '?')} ({results.get('threads', '?')} "
            f"threads, batch 1, raw inference; mAP50-95 at {results.get('accuracy_imgsz', '?')} px, "
            f"{results.get('calib_images', '?')} calibration images):")
    return f"{head}\n\n{_script('bench_export').table(results)}\n"


def render_bench_honesty(results: dict[str, Any]) -> str:
    lines = []
    ov = results.get("openvino", {})
    if ov.get("status") == "ok":
        lines.append(f"- OpenVINO ({ov['target']}, runs {ov['executed_precision']}): harness / `benchmark_app` median "
                     f"ratio {ov['ratio']:.3f} (pairs: {', '.join(f'{r:.3f}' for r in ov['pair_ratios'])})")
    trt = results.get("tensorrt", {})
    if trt.get("status") == "ok":
        lines.append(f"- TensorRT ({trt['target']}): harness / `trtexec` median ratio {trt['ratio']:.3f}")
    m = results.get("map", {})
    if m.get("rows"):
        parts = [f"{t} {r['map50_95']:.4f}" for t, r in m["rows"].items() if r.get("map50_95") is not None]
        lines.append(f"- fp32 exports against PyTorch ({m['torch_map50_95']:.4f}): {', '.join(parts)}; "
                     f"{'within' if m.get('agree') else 'NOT within'} {m['tolerance']}")
    sp = results.get("spread", {})
    if sp.get("status") == "ok":
        lines.append(f"- {len(sp['medians_ms'])} repeats of {sp['target']}: medians {sp['min_ms']:.2f} to "
                     f"{sp['max_ms']:.2f} ms ({sp['spread_pct']:.1f}% spread)")
    where = f"model {Path(results.get('model', '?')).name}, imgsz {results.get('imgsz', '?')}"
    return f"Measured by `scripts/bench_honesty.py` ({where}):\n\n" + "\n".join(lines) + "\n"


def render_bench_trt_qdq(results: dict[str, Any]) -> str:
    """The Q/DQ comparison table exactly as scripts/bench_trt_qdq.py prints it, with its command."""
    return f"`{results['command']}` ({results.get('machine', '?')}):\n\n{_script('bench_trt_qdq').table(results)}\n"


def render_bench_amp(results: dict[str, Any]) -> str:
    """Training step time fp32 vs bf16, as scripts/bench_amp.py prints it."""
    inst = ", ".join(results.get("bf16_instructions") or []) or "no bf16 instructions (bf16 is emulated)"
    return (f"`{results['command']}` ({results['arch']}, {results.get('cpu', '?')}, {results.get('threads')} "
            f"threads, {inst}; forward with loss, backward and AdamW step, medians of alternating rounds):\n\n"
            f"{_script('bench_amp').table(results)}\n")


def render_bench_amp_finetune(results: dict[str, Any]) -> str:
    return (f"`{results['command'].strip()}` ({results['epochs']} epochs at {results['imgsz']} px, batch "
            f"{results['batch']}, {results['cpu']}):\n\n{_script('bench_amp_finetune').table(results)}")


def render_bench_main_job(results: dict[str, Any]) -> str:
    return _script("bench_main_job").render(results)


def render_bench_int8_preset(results: dict[str, Any]) -> str:
    return _script("bench_int8_preset").render(results)


def render_bench_int8_scope(results: dict[str, Any]) -> str:
    return _script("bench_int8_scope").render(results)


def render_bench_finetune_recipe(results: dict[str, Any]) -> str:
    return _script("bench_finetune_recipe").render(results)


def render_demo_baseline(results: dict[str, Any]) -> str:
    return f"{_script('ship_demo_baseline').table(results)}\n"


def render_bench_prune(results: dict[str, Any]) -> str:
    return f"`python scripts/bench_prune.py` ({results['environment']}):\n\n{_script('bench_prune').markdown(results)}"


def render_bench_prune_floor(results: dict[str, Any]) -> str:
    return f"`{results['command']}` ({results['date']}):\n\n{_script('bench_prune_floor').markdown(results)}"


def render_bench_latency_goal(results: dict[str, Any]) -> str:
    return f"`{results['command']}` ({results['date']}):\n\n{_script('bench_latency_goal').markdown(results)}"


def render_bench_tune(results: dict[str, Any]) -> str:
    return f"`python scripts/bench_tune.py`: {_script('bench_tune').table(results)}"


def render_bench_optimize_ray(results: dict[str, Any]) -> str:
    return _script("bench_optimize_ray").render(results)


def render_bench_optimize(results: dict[str, Any]) -> str:
    """The optimize figures as scripts/bench_optimize.py writes them to results.md, with the run's settings."""
    env = results.get("environment") or {}
    head = (f"`{results['command']}` ({env.get('cpu', '?')}, {round(results['seconds'] / 60)} min in all; mAP50-95 at "
            f"{results['imgsz']} px, latency at " + " and ".join(f"{s} px" for s in results["latency_sizes"]) + "):")
    return f"{head}\n\n{_script('bench_optimize').markdown(results)}"


def render_benchmark(results: dict[str, Any]) -> str:
    """A `yolo-optim benchmark` results.json: its device tables as report.md shows them."""
    sys.path.insert(0, str(ROOT))
    from yolo_optim.report.report import Report
    from yolo_optim.report.tables import report_markdown

    md = report_markdown(Report.from_json(results), plot=None)
    tables = md.split("\n## ", 1)[1].split("\n## Runs", 1)[0]
    run = results["runs"][-1]
    return f"`{run['command']}` (run {run['run_id']}):\n\n## {tables.strip()}\n".replace("\n## ", "\n#### ")


def renderer(name: str, results: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    if results.get("schema", "").startswith("yolo-optim") or "rows" in results and "runs" in results:
        return render_benchmark
    table = {"bench_export": render_bench_export, "bench_honesty": render_bench_honesty,
             "bench_amp": render_bench_amp, "bench_amp_finetune": render_bench_amp_finetune,
             "demo_baseline": render_demo_baseline, "bench_main_job": render_bench_main_job,
             "bench_trt_qdq": render_bench_trt_qdq, "bench_optimize_ray": render_bench_optimize_ray,
             "bench_optimize": render_bench_optimize, "bench_int8_preset": render_bench_int8_preset,
             "bench_int8_scope": render_bench_int8_scope,
             "bench_finetune_recipe": render_bench_finetune_recipe,
             "bench_prune": render_bench_prune, "bench_prune_floor": render_bench_prune_floor,
             "bench_latency_goal": render_bench_latency_goal,
             "bench_tune": render_bench_tune}
    # the longest name the file's name starts with (bench_optimize_ray is not bench_optimize)
    key = max((k for k in table if name.startswith(k)), key=len, default=None)
    if key is None:
        raise SystemExit(f"no renderer for scripts/results/{name}.json; add one to {Path(__file__).name}")
    return table[key]


def render_block(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        key = max((k for k in COMMANDS if name.startswith(k)), key=len, default=None)
        cmd = COMMANDS.get(key, "the script that measures it")
        return (f"_No results file `scripts/results/{name}.json` in this checkout: run `{cmd}`, then "
                f"`python scripts/render_readme.py`._\n")
    results = json.loads(path.read_text(encoding="utf-8"))
    return renderer(name, results)(results)


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render_block(m["name"]) + m.group(4), text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="exit 1 when the README differs from the rendered one")
    a = p.parse_args()
    text = a.readme.read_text(encoding="utf-8")
    new = render(text)
    if a.check:
        if new != text:
            print(f"{a.readme} is out of date: run python scripts/render_readme.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        a.readme.write_text(new, encoding="utf-8")
    print(f"rendered {len(BLOCK.findall(text))} block(s) in {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
