"""Size of a model as the pruner counts it: convolution/linear MACs, parameters, and per-channel MAC costs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

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
