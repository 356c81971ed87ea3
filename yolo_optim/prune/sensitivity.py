"""Sensitivity analysis: prune each channel group alone at several ratios and measure the mAP it costs.

The table (one row per group and ratio) feeds the `sensitivity` allocation, which then picks per-layer ratios
that meet the target at the least measured loss. It is saved as CSV and as a heat-map plot, and reused on resume.
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from ..export.artifact import quiet_ultralytics
from ..paths import write_text_atomic
from .allocate import round_keep
from .evaluate import primary_map, val_map
from .graph import PruningGraph, refresh_block_attributes
from .importance import recalibrate_batchnorm, score_groups
from .measure import model_size

LOG = logging.getLogger("yolo_optim.prune")
FIELDS = ("group", "channels", "ratio", "kept", "map", "loss", "macs_saved")
PROBE_CALIB_BATCHES = 4  # BatchNorm re-estimation batches of each probe (and of the reference it is compared with)


@dataclass(frozen=True)
class SensitivityRow:
    group: str  # root layer of the group
    channels: int  # channels before pruning
    ratio: float  # fraction asked to remove
    kept: int  # channels kept after rounding
    map: float  # mAP50-95 on the val subset with only this group pruned
    loss: float  # reference mAP (the unpruned model, BatchNorm re-estimated as the probe is) minus `map`
    macs_saved: float  # fraction of the model's MACs this removes


def read_table(path: Path) -> list[SensitivityRow]:
    with open(path, newline="", encoding="utf-8") as f:
        return [SensitivityRow(r["group"], int(r["channels"]), float(r["ratio"]), int(r["kept"]), float(r["map"]),
                               float(r["loss"]), float(r["macs_saved"])) for r in csv.DictReader(f)]


def write_table(rows: list[SensitivityRow], path: Path) -> None:
    lines = [",".join(FIELDS)]
    lines += [f"{r.group},{r.channels},{r.ratio:.4f},{r.kept},{r.map:.6f},{r.loss:.6f},{r.macs_saved:.6f}"
              for r in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def curves(rows: list[SensitivityRow]) -> dict[str, tuple[tuple[float, float], ...]]:
    """group -> ((actual removed fraction, loss), ...) for the allocator."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        out.setdefault(r.group, []).append((1 - r.kept / r.channels, r.loss))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def analyse(model: nn.Module, data: str | Path, imgsz: int, ratios: tuple[float, ...], method: str,
            round_to: int, table: Path, batch: int = 16, seed: int = 0, calibrate: bool = True,
            kind: str = "structured", taylor_batches: int = 4,
            shard: tuple[int, int] = (0, 1)) -> list[SensitivityRow]:
    """Measure (or finish measuring: rows already in `table` are kept) the loss of pruning each group alone.

    Gradient criteria (taylor) score channels on `taylor_batches` training batches of `data`. `shard=(i, n)`
    measures only every n-th probe from the i-th, so n processes (Ray tasks on a cluster) share the analysis; the
    probe order is fixed by the model's graph, so the shards together cover every probe once.
    """
    reference = _reference_map(model, data, imgsz, batch, calibrate, seed)
    # a row measured before (a resumed or merged table) is re-based on this reference: only its mAP is kept
    done = [replace(r, loss=reference - r.map) for r in read_table(table)] if table.exists() else []
    have = {(r.group, round(r.ratio, 4)) for r in done}
    base_macs = model_size(model, min(imgsz, 320)).macs
    graph = PruningGraph(model, round_to)
    scores = score_groups(graph, method, seed, data, imgsz, taylor_batches)
    # a probe that rounding leaves unpruned (a group too narrow for round_to at this ratio) is never measured
    todo = [(g, r) for g in graph.groups for r in ratios if (g.name, round(r, 4)) not in have
            and (kind != "neuron" or g.pointwise)
            and round_keep(graph.channels(g) * (1 - r), graph.channels(g), round_to, 0.95) < graph.channels(g)]
    todo = todo[shard[0]::shard[1]]
    LOG.info("sensitivity: %d groups x %d ratios (%d to measure), reference mAP %.4f; each is a validation, so this "
             "takes a while on a CPU (allocation=uniform or global skips it, sensitivity_table= reuses one)",
             len(graph.groups), len(ratios), len(todo), reference)
    rows = list(done)
    t0 = time.time()
    for i, (g, ratio) in enumerate(todo):
        n = graph.channels(g)
        kept = round_keep(n * (1 - ratio), n, round_to, 0.95)
        work = copy.deepcopy(model)
        wg = PruningGraph(work, round_to)
        target = next(x for x in wg.groups if x.name == g.name)
        order = scores[g.name].argsort(stable=True)
        wg.prune(target, order[: n - kept].tolist())
        refresh_block_attributes(work)
        m = _measured_map(work, data, imgsz, batch, calibrate, seed)
        saved = 1 - model_size(work, min(imgsz, 320)).macs / base_macs
        rows.append(SensitivityRow(g.name, n, ratio, kept, m, reference - m, saved))
        write_table(rows, table)  # every row is kept as soon as it is measured: a killed analysis resumes
        if (i + 1) % 10 == 0:
            elapsed = time.time() - t0
            left = elapsed / (i + 1) * (len(todo) - i - 1)
            LOG.info("sensitivity: %d/%d measured in %.0f s, about %s left", i + 1, len(todo), elapsed,
                     f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min")
    return rows


def _reference_map(model: nn.Module, data: str | Path, imgsz: int, batch: int, calibrate: bool, seed: int) -> float:
    """What each probe's mAP is compared with: the unpruned model after the same BatchNorm re-estimation.

    Re-estimating the statistics moves mAP by itself (on the demo model's probe subset, 4 batches: 4.9 points down on
    plain letterboxed images, 0.8 on augmented ones). Against the model as trained, that offset would be charged to
    every group alike, hiding the differences between groups that the allocation needs.
    """
    return _measured_map(copy.deepcopy(model) if calibrate else model, data, imgsz, batch, calibrate, seed)


def _measured_map(work: nn.Module, data: str | Path, imgsz: int, batch: int, calibrate: bool, seed: int) -> float:
    """mAP of `work` as every probe and the reference measure it: BatchNorm re-estimated in place (when calibrate),
    then validated. One function for both, so the reference cannot drift from the probes."""
    if calibrate:
        with quiet_ultralytics():  # its dataset banner, once per probe, would bury the progress lines
            recalibrate_batchnorm(work, data, imgsz, batches=PROBE_CALIB_BATCHES, seed=seed)
    return primary_map(val_map(work, data, imgsz, batch), getattr(work, "task", "detect"))


def probe_shard(model: str, data: str, folder: Path, shard: tuple[int, int], **keys: object) -> Path:
    """Shard `shard` of the sensitivity probes of checkpoint `model`, as `yolo-optim prune allocation=sensitivity`
    with the prune keys `keys` would measure them (same prepared model, val subset, scores and probes), into
    `folder`/sensitivity.csv; rows already there are kept. The shards' tables together are a `sensitivity_table=`."""
    from ..config import make_config
    from .api import _ratios
    from .checkpoint import load_source
    from .evaluate import val_subset_yaml
    from .structured import prepare

    cfg = make_config("prune", {**keys, "model": model, "data": data})
    module = load_source(model)[0]
    prepared, _ = prepare(module)
    subset = val_subset_yaml(data, cfg.sensitivity_images, folder / "sensitivity_val", cfg.seed) \
        if cfg.sensitivity_images else data
    table = folder / "sensitivity.csv"
    rows = analyse(prepared, subset, cfg.imgsz, _ratios(cfg.sensitivity_ratios), cfg.method, cfg.round_to, table,
                   cfg.batch, cfg.seed, calibrate=cfg.calib_batches > 0, kind=cfg.kind,
                   taylor_batches=cfg.taylor_batches, shard=shard)
    if not table.exists():  # a shard with nothing left to measure still hands back a table
        write_table(rows, table)
    return table


def plot_table(rows: list[SensitivityRow], path: Path) -> Path | None:
    """Heat map: one row per group, one column per ratio, colour = mAP loss."""
    if not rows:
        return None
    import numpy as np

    from ..core.plotting import (
        plt,  # an Agg canvas per figure, no process-wide matplotlib.use
    )

    groups = list(dict.fromkeys(r.group for r in rows))
    ratios = sorted({round(r.ratio, 4) for r in rows})
    grid = np.full((len(groups), len(ratios)), np.nan)
    for r in rows:
        grid[groups.index(r.group), ratios.index(round(r.ratio, 4))] = r.loss * 100
    fig, ax = plt.subplots(figsize=(max(6.0, 2 + 1.2 * len(ratios)), 1.5 + 0.18 * len(groups)))
    im = ax.imshow(grid, aspect="auto", cmap="magma_r")
    ax.set_xticks(range(len(ratios)), [f"{r:.0%}" for r in ratios])
    ax.set_yticks(range(len(groups)), groups, fontsize=6)
    ax.set_xlabel("channels removed from this group alone")
    ax.set_title("mAP50-95 loss (points) per pruned group")
    fig.colorbar(im, ax=ax, label="mAP50-95 loss (points)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
