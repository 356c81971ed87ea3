"""YOLO-aware channel groups on top of Torch-Pruning's dependency graph.

What this adds to Torch-Pruning for Ultralytics models:
- split blocks are rewritten into two-conv standard blocks first (transform.py);
- modules whose forward reshapes channels into heads (attention), or that this module does not know, are traced
  as one opaque node: their insides never enter a group, and any group that would change their input or output
  width is left alone (they are "left whole", with a warning naming them);
- a group is kept only if pruning it changes no model output and crosses no reshape/split/slice: box, class,
  DFL, mask, keypoint and angle channels therefore stay fixed without a per-head list;
- training-only branches (YOLO26's semantic-segmentation proto) are traced too, so training still works.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import OptimError

# Blocks whose forward only composes convs, norms, activations, pools, upsampling, concat along channels and
# residual adds: Torch-Pruning follows them exactly. Everything else is traced as an opaque node.
TRANSPARENT = frozenset({
    # ultralytics.nn.modules.conv
    "Conv", "Conv2", "LightConv", "DWConv", "DWConvTranspose2d", "ConvTranspose", "Focus", "RepConv",
    "ChannelAttention", "Concat", "Index",
    # ultralytics.nn.modules.block
    "Proto", "Proto26", "HGStem", "HGBlock", "SPP", "SPPF", "C1", "C3", "C3x", "RepC3", "C3Ghost", "GhostBottleneck",
    "Bottleneck", "BottleneckCSP", "ResNetBlock", "ResNetLayer", "C3f", "C3k", "RepBottleneck", "RepCSP", "ADown",
    "AConv", "SPPELAN", "RepVGGDW", "CIB", "PSABlock", "SCDown", "ABlock", "A2C2f", "Residual",
    # ultralytics.nn.modules.head
    "Detect", "Segment", "Segment26", "OBB", "OBB26", "Pose", "Pose26", "v10Detect",
    # ultralytics.nn.tasks
    "DetectionModel", "SegmentationModel", "PoseModel", "OBBModel",
})
# Deliberately opaque even though Ultralytics: attention views its channels as (heads, head_dim) from x.shape;
# GhostConv concatenates y with a depthwise copy of y, which ties channel i to channel i + c/2 in a way the
# dependency graph does not see.
ATTENTION = frozenset({"Attention", "AAttn", "MaxSigmoidAttnBlock", "TransformerLayer", "TransformerBlock"})
COUPLED = frozenset({"GhostConv"})
_TORCH_PRIMITIVES = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Sequential, nn.ModuleList, nn.Identity,
                     nn.Upsample, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.ZeroPad2d)
_TORCH_ACTIVATION_MODULE = "torch.nn.modules.activation"


@dataclass
class ChannelGroup:
    """Channels that must be removed together: a conv's outputs and everything that reads or mirrors them."""

    name: str  # the root layer, e.g. "model.6.cv1"
    root: nn.Module  # the conv whose output channels index the group
    channels: int  # channels the group has now
    pointwise: bool  # every layer producing these channels is 1x1 (or depthwise/linear): a "neuron" group
    members: tuple[str, ...]  # names of the layers the group touches


@dataclass
class GroupScan:
    """The prunable groups of a prepared model and what was left whole, with why."""

    groups: list[ChannelGroup]
    whole: dict[str, str] = field(default_factory=dict)  # module name -> reason it is left whole


class _Tie(torch.autograd.Function):
    """Outputs that depend, for autograd tracing, on all inputs at once: one graph node for a whole module."""

    @staticmethod
    def forward(ctx: Any, n_in: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return tuple(t.clone() for t in tensors[n_in:])

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[None, ...]:  # type: ignore[override]
        raise RuntimeError("the tracing stand-in of an opaque module is not differentiable")


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _replace_tensors(obj: Any, it: Iterator[torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return next(it)
    if isinstance(obj, dict):
        return {k: _replace_tensors(v, it) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace_tensors(v, it) for v in obj)
    return obj


class OpaqueStandIn(nn.Module):
    """Stands in for a module during tracing only: runs it, then ties its outputs to its inputs in one node."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.in_channels: int | None = None
        self.out_channels: int | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        ins = [t for t in _tensors(args) if t.requires_grad]
        outs = [t.detach() for t in _tensors(out)]
        if not ins or not outs:
            return out
        self.in_channels = ins[0].shape[1] if ins[0].ndim > 1 else None
        self.out_channels = outs[0].shape[1] if outs[0].ndim > 1 else None
        return _replace_tensors(out, iter(_Tie.apply(len(ins), *ins, *outs)))


def _opaque_pruner() -> Any:
    import torch_pruning as tp

    class OpaquePruner(tp.pruner.function.BasePruningFunc):
        """Reports an opaque node's widths for Torch-Pruning's shape inference; pruning it is never allowed."""

        def prune_out_channels(self, layer: nn.Module, idxs: Any) -> nn.Module:
            raise OptimError(f"internal error: tried to prune the opaque module {type(layer.inner).__name__}")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module) -> int | None:
            return layer.out_channels

        def get_in_channels(self, layer: nn.Module) -> int | None:
            return layer.in_channels

    return OpaquePruner()


def opaque_modules(model: nn.Module) -> dict[str, str]:
    """Top-most modules to keep whole: name -> reason. Children of a transparent block are inspected in turn."""
    found: dict[str, str] = {}

    def visit(m: nn.Module, prefix: str) -> None:
        for name, child in m.named_children():
            full = f"{prefix}.{name}" if prefix else name
            cls = type(child).__name__
            if cls in ATTENTION:
                found[full] = f"{cls}: attention heads are kept whole (channels are viewed as heads)"
            elif cls in COUPLED:
                found[full] = f"{cls}: its two halves are coupled channel by channel, kept whole"
            elif cls in TRANSPARENT or isinstance(child, _TORCH_PRIMITIVES) \
                    or type(child).__module__ == _TORCH_ACTIVATION_MODULE:
                visit(child, full)
            elif cls == "DFL":
                found[full] = ""  # a fixed decoder with no trainable channels: opaque, but nothing is lost
            else:
                found[full] = f"{cls}: a block the pruner does not know, kept whole"

    visit(model, "")
    return found


@contextlib.contextmanager
def _stand_ins(model: nn.Module, names: dict[str, str]) -> Iterator[dict[str, OpaqueStandIn]]:
    """Swap the opaque modules of `model` (our working copy) for tracing stand-ins; always swap them back."""
    swapped: dict[str, tuple[nn.Module, str, nn.Module]] = {}
    stand_ins: dict[str, OpaqueStandIn] = {}
    try:
        for name in names:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            inner = getattr(parent, attr)
            proxy = OpaqueStandIn(inner)
            for k in ("i", "f", "type", "np"):  # BaseModel._predict_once reads i and f on top-level layers
                if hasattr(inner, k):
                    setattr(proxy, k, getattr(inner, k))
            parent._modules[attr] = proxy
            swapped[name] = (parent, attr, inner)
            stand_ins[name] = proxy
        yield stand_ins
    finally:
        for parent, attr, inner in swapped.values():
            parent._modules[attr] = inner


@contextlib.contextmanager
def _restored_modes(model: nn.Module) -> Iterator[None]:
    was = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, t in was.items():
            m.training = t


def _traced_forward(model: nn.Module, x: torch.Tensor) -> Any:
    """The forward the tracer records: eval mode (one-to-one heads see the backbone undetached), with
    training-only branches switched on so that pruning also adapts them (YOLO26-seg's semantic branch on P3).

    Only those modules' own flags change: their BatchNorms stay in eval mode and keep their statistics.
    """
    model.eval()
    for m in model.modules():
        if getattr(m, "semseg", None) is not None:
            m.training = True
    return model(x)


def raw_outputs(out: Any) -> list[torch.Tensor]:
    """Every tensor a YOLO model returns, except the 'feats' it passes through from the neck."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k, v in out.items() if k != "feats" for t in raw_outputs(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in raw_outputs(v)]
    return []


@contextlib.contextmanager
def _head_branch_outputs(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect what the detection head's branches produce, per level, before the head reshapes and decodes it.

    Tracing stops there: the head's `view(b, c, -1)` + `cat` over anchors is not a channel operation, and Torch-Pruning
    can loop forever on it (seen with the OBB angle branch). Every branch output is a model output for the tracer,
    so its channels (boxes, classes, DFL bins, masks, keypoints, angles, protos) stay fixed.
    """
    collected: list[torch.Tensor] = []
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(layers, nn.Sequential) and len(layers) else None
    hooks = []
    if head is not None and hasattr(head, "nl") and hasattr(head, "stride"):
        def keep(_m: nn.Module, _i: Any, out: Any) -> None:
            # `* 1` gives each output its own graph node: the tracer marks a root node as a model output only
            # when it is not already some layer's result
            collected.extend(t * 1 for t in _tensors(out))

        for child in head.children():
            if isinstance(child, nn.ModuleList):
                hooks += [branch.register_forward_hook(keep) for branch in child]
            elif type(child).__name__.startswith("Proto"):
                hooks.append(child.register_forward_hook(keep))
    try:
        yield collected
    finally:
        for h in hooks:
            h.remove()


def example_input(model: nn.Module, imgsz: int | None = None) -> torch.Tensor:
    stride = int(max(getattr(model, "stride", torch.tensor([32.0])).max().item(), 32))
    size = imgsz or 2 * stride
    ch = int(getattr(model, "yaml", {}).get("channels", 3)) if isinstance(getattr(model, "yaml", None), dict) else 3
    return torch.zeros(1, ch, size, size)


class PruningGraph:
    """A prepared model, its Torch-Pruning dependency graph and its prunable channel groups."""

    def __init__(self, model: nn.Module, round_to: int = 1) -> None:
        import torch_pruning as tp

        self.model = model
        self.round_to = max(1, int(round_to))
        self.whole = opaque_modules(model)
        for p in model.parameters():
            p.requires_grad_(True)
        x = example_input(model)
        with _stand_ins(model, self.whole) as stand_ins, _restored_modes(model), warnings.catch_warnings(), \
                _head_branch_outputs(model) as branches:
            warnings.simplefilter("ignore")
            self.DG = tp.DependencyGraph().build_dependency(
                model, x, forward_fn=_traced_forward, output_transform=lambda out: list(branches) or raw_outputs(out),
                verbose=False, customized_pruners={OpaqueStandIn: _opaque_pruner()})
            traced = {n for n, s in stand_ins.items() if s in self.DG.module2node}
        # report only what the forward uses and what could have been pruned
        self.whole = {n: r for n, r in self.whole.items() if n in traced and r}
        self._opaque = set(stand_ins.values())
        self._names = {m: n for n, m in model.named_modules()}
        self._full: dict[str, Any] = {}  # group name -> its Torch-Pruning group; valid until the next prune
        self.scan = self._scan()

    @property
    def groups(self) -> list[ChannelGroup]:
        return self.scan.groups

    def _scan(self) -> GroupScan:
        from torch_pruning import ops

        bad_ops = {ops.OPTYPE.OUTPUT, ops.OPTYPE.RESHAPE, ops.OPTYPE.SPLIT, ops.OPTYPE.UNBIND, ops.OPTYPE.EXPAND,
                   ops.OPTYPE.SLICE, ops.OPTYPE.PARAMETER, ops.OPTYPE.CUSTOMIZED}
        seen: set[nn.Module] = set()
        groups = []
        for m, node in list(self.DG.module2node.items()):
            if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) or m in seen:
                continue
            pruner = self.DG.get_pruner_of_module(m)
            n = pruner.get_out_channels(m)
            if not n or n < 2:
                continue
            group = self.DG.get_pruning_group(m, pruner.prune_out_channels, list(range(n)))
            outs = [d.target.module for d, _ in group if self.DG.is_out_channel_pruning_fn(d.handler)]
            seen.update(outs)
            if any(d.target.type in bad_ops or d.target.module in self._opaque for d, _ in group):
                continue
            layers = [o for o in outs if isinstance(o, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
            pointwise = all(isinstance(o, nn.Linear) or o.kernel_size == (1, 1) or o.groups == o.out_channels
                            for o in layers)
            members = tuple(sorted({self._names.get(d.target.module, "") for d, _ in group} - {""}))
            groups.append(ChannelGroup(self._name(m), m, n, pointwise, members))
            self._full[groups[-1].name] = group
        return GroupScan(groups, dict(self.whole))

    def _name(self, m: nn.Module) -> str:
        name = self._names.get(m, "?")
        return name.removesuffix(".conv")

    def channels(self, group: ChannelGroup) -> int:
        return int(self.DG.get_pruner_of_module(group.root).get_out_channels(group.root))

    def full_group(self, group: ChannelGroup) -> Any:
        """The Torch-Pruning group over all current channels of `group` (for importance scoring)."""
        if group.name not in self._full:  # building a group re-maps the whole graph: reuse it until a prune
            pruner = self.DG.get_pruner_of_module(group.root)
            self._full[group.name] = self.DG.get_pruning_group(group.root, pruner.prune_out_channels,
                                                               list(range(self.channels(group))))
        return self._full[group.name]

    def prune(self, group: ChannelGroup, idxs: list[int]) -> None:
        """Remove channels `idxs` (current indices) of `group` from every layer that depends on them."""
        if not idxs:
            return
        pruner = self.DG.get_pruner_of_module(group.root)
        tp_group = self.DG.get_pruning_group(group.root, pruner.prune_out_channels, sorted(int(i) for i in idxs))
        if not self.DG.check_pruning_group(tp_group):
            raise OptimError(f"internal error: pruning {group.name} would empty a layer")
        tp_group.prune()
        self._full.clear()
        group.channels = self.channels(group)


def refresh_block_attributes(model: nn.Module) -> None:
    """Blocks that store channel counts for later use (fusing) must see the pruned widths."""
    for m in model.modules():
        cls = type(m).__name__
        if cls == "RepConv":
            m.c1, m.c2 = m.conv1.conv.in_channels, m.conv1.conv.out_channels
        elif cls == "RepVGGDW":
            m.dim = m.conv.conv.out_channels
