"""Size of a model as the pruner counts it: convolution/linear MACs, parameters, and per-channel MAC costs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .graph import PruningGraph, example_input


@dataclass(frozen=True)
class ModelSize:
    macs: int  # multiply-accumulates of conv/linear layers for one image at the measuring size
    params: int  # parameters
    imgsz: int  # image size the MACs were counted at

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


def _layer_macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        return out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    if isinstance(m, nn.ConvTranspose2d):
        return out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] \
            // (m.stride[0] * m.stride[1])
    if isinstance(m, nn.Linear):
        return out.numel() // out.shape[0] * m.in_features
    return 0


def _output_sizes(model: nn.Module, imgsz: int) -> dict[nn.Module, tuple[int, int]]:
    """Output pixels (H*W) and MACs of every conv/linear layer for one forward pass at `imgsz`."""
    found: dict[nn.Module, tuple[int, int]] = {}

    def hook(m: nn.Module, _in: object, out: torch.Tensor) -> None:
        if isinstance(out, torch.Tensor):
            pixels = out.shape[2] * out.shape[3] if out.ndim == 4 else 1
            found[m] = (pixels, _layer_macs(m, out))

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input(model, imgsz))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return found


def model_size(model: nn.Module, imgsz: int = 256) -> ModelSize:
    sizes = _output_sizes(model, imgsz)
    return ModelSize(sum(m for _, m in sizes.values()), sum(p.numel() for p in model.parameters()), imgsz)


def channel_costs(graph: PruningGraph, imgsz: int = 256) -> dict[str, float]:
    """MACs one channel of each group costs: its filters in the layers that produce it, its slices in the readers."""
    sizes = _output_sizes(graph.model, imgsz)
    costs: dict[str, float] = {}
    for g in graph.groups:
        total = 0.0
        for dep, _ in graph.full_group(g):
            m = dep.target.module
            if not isinstance(m, nn.Conv2d) or m not in sizes:
                continue
            pixels = sizes[m][0]
            k = m.kernel_size[0] * m.kernel_size[1]
            if m.groups == m.out_channels and m.groups > 1:  # depthwise: one filter per channel
                total += pixels * k
            elif graph.DG.is_out_channel_pruning_fn(dep.handler):
                total += pixels * k * m.in_channels / m.groups
            else:
                total += pixels * k * m.out_channels / m.groups
        costs[g.name] = total
    return costs


class SizeModel:
    """MACs and parameters of a model as a function of how many channels each group keeps, without pruning.

    Every conv/linear layer's output channels belong to at most one group and its input channels to a known
    number of channels of each group (through concatenations), so its MACs after pruning are exactly
    macs0 * (in_kept / in0) * (out_kept / out0). The target search evaluates thousands of allocations this way.
    """

    def __init__(self, graph: PruningGraph, imgsz: int) -> None:
        model = graph.model
        measured = _output_sizes(model, imgsz)
        out_of: dict[nn.Module, str] = {}
        in_of: dict[nn.Module, dict[str, int]] = {}
        bn_of: dict[nn.Module, str] = {}
        for g in graph.groups:
            for dep, idxs in graph.full_group(g):
                m = dep.target.module
                is_out = graph.DG.is_out_channel_pruning_fn(dep.handler)
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    if is_out or _depthwise(m):
                        out_of[m] = g.name
                    else:
                        in_of.setdefault(m, {})[g.name] = in_of.get(m, {}).get(g.name, 0) + len(idxs)
                elif isinstance(m, nn.BatchNorm2d):
                    bn_of[m] = g.name
        self.channels0 = {g.name: graph.channels(g) for g in graph.groups}
        self.layers = []  # (macs0, in0, out0, depthwise, out_group, in_groups, params_per_in_out, bias)
        counted = 0
        for m, (_, macs0) in measured.items():
            w = m.weight
            out0 = w.shape[1] * m.groups if isinstance(m, nn.ConvTranspose2d) else w.shape[0]
            in0 = w.shape[0] if isinstance(m, nn.ConvTranspose2d) else w.shape[1] * m.groups \
                if not isinstance(m, nn.Linear) else w.shape[1]
            per = w.numel() / max(in0 * out0, 1) if not _depthwise(m) else w.numel() / out0
            self.layers.append((macs0, in0, out0, _depthwise(m), out_of.get(m), in_of.get(m, {}), per,
                                m.bias is not None))
            counted += w.numel() + (m.bias.numel() if m.bias is not None else 0)
        self.bns = [(m.num_features, bn_of[m]) for m in bn_of]
        counted += sum(2 * n for n, _ in self.bns)
        self.params_other = sum(p.numel() for p in model.parameters()) - counted

    def size(self, keep: dict[str, int]) -> tuple[float, float]:
        """(MACs, parameters) when group `name` keeps keep[name] channels (missing names keep all)."""
        def kept(name: str | None, n0: int) -> float:
            if name is None:
                return n0
            return n0 * keep.get(name, self.channels0[name]) / self.channels0[name]

        macs = params = 0.0
        for macs0, in0, out0, dw, out_g, in_gs, per, bias in self.layers:
            out = kept(out_g, out0)
            if dw:
                macs += macs0 * out / out0
                params += per * out + (out if bias else 0)
                continue
            # a group read several times (SPPF's concat of x and its pools) loses its channels in every copy
            inn = in0 - sum(c * (1 - keep.get(g, self.channels0[g]) / self.channels0[g]) for g, c in in_gs.items())
            macs += macs0 * (inn / in0) * (out / out0)
            params += per * inn * out + (out if bias else 0)
        params += sum(2 * kept(g, n) for n, g in self.bns) + self.params_other
        return macs, params


def _depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels
