"""Rewrite YOLO blocks whose `chunk`/`split` hides a channel dependency into equivalent standard Ultralytics blocks.

C2f and its children (C3k2, C2fPSA, C2fCIB) compute `cv1(x).chunk(2, 1)`: the two halves of one convolution are
used differently, and after pruning the halves would no longer be equal, so `chunk` (and `forward_split`'s stored
`self.c`) would cut in the wrong place. Each such block is replaced by the block Ultralytics already ships for the
same computation with two convolutions instead of one split one:

    C2f / C3k2 / C2fPSA / C2fCIB / RepNCSPELAN4 / ELAN1   ->  C3f  (cv2 = first half, cv1 = second half)
    C2 / C2PSA / PSA                                      ->  C3   (cv1 = the processed half, cv2 = the other)

The rewrite works on a copy, is exact (same outputs to float rounding), and the result contains only classes from
torch and ultralytics.nn.modules, so a pruned checkpoint loads where this package is not installed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def split_conv(conv: nn.Module, ranges: list[tuple[int, int]]) -> list[nn.Module]:
    """Split an Ultralytics Conv (conv + bn + act) into one Conv per output-channel range."""
    parts = []
    for start, stop in ranges:
        part = copy.deepcopy(conv)
        c = conv.conv
        new = nn.Conv2d(c.in_channels, stop - start, c.kernel_size, c.stride, c.padding, c.dilation, c.groups,
                        c.bias is not None, c.padding_mode)
        new.weight.data = c.weight.data[start:stop].clone()
        if c.bias is not None:
            new.bias.data = c.bias.data[start:stop].clone()
        part.conv = new
        if hasattr(conv, "bn"):
            bn = conv.bn
            nbn = nn.BatchNorm2d(stop - start, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
            for name in ("weight", "bias"):
                getattr(nbn, name).data = getattr(bn, name).data[start:stop].clone()
            nbn.running_mean = bn.running_mean[start:stop].clone()
            nbn.running_var = bn.running_var[start:stop].clone()
            nbn.num_batches_tracked = bn.num_batches_tracked.clone()
            part.bn = nbn
        parts.append(part)
    return parts


def _blank(cls: type, old: nn.Module) -> nn.Module:
    """An empty instance of a standard block, carrying the graph bookkeeping (i, f, type, np) of the block it replaces.

    The block is filled with the old block's trained layers instead of being constructed from channel arguments,
    because pruned channel counts no longer follow the constructor's formulas.
    """
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    for attr in ("i", "f", "np"):
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    if hasattr(old, "type"):
        new.type = f"{cls.__module__}.{cls.__name__}"
    new.train(old.training)
    return new


def _halves(conv: nn.Module, c: int) -> tuple[nn.Module, nn.Module]:
    first, second = split_conv(conv, [(0, c), (c, 2 * c)])
    return first, second


def _swap_input_halves(conv: nn.Module, c_first: int) -> None:
    """Reorder a conv's input channels from (A, B) to (B, A), where A holds the first `c_first` channels."""
    w = conv.conv.weight.data
    conv.conv.weight.data = torch.cat([w[:, c_first:], w[:, :c_first]], 1).contiguous()


def c2f_as_c3f(m: nn.Module) -> nn.Module:
    """C2f: y = [a, b, m1(b), m2(m1(b)), ...] with (a, b) = cv1(x).chunk(2); C3f: y = [cv2(x), cv1(x), m1(.), ...]."""
    from ultralytics.nn.modules.block import C3f

    a, b = _halves(m.cv1, m.cv1.conv.out_channels // 2)
    new = _blank(C3f, m)
    new.cv1, new.cv2, new.cv3, new.m = b, a, m.cv2, m.m
    return new


def elan_as_c3f(m: nn.Module) -> nn.Module:
    """RepNCSPELAN4/ELAN1: y = [a, b, cv2(b), cv3(cv2(b))]; the same chain as C3f with m = [cv2, cv3]."""
    from ultralytics.nn.modules.block import C3f

    a, b = _halves(m.cv1, m.cv1.conv.out_channels // 2)
    new = _blank(C3f, m)
    new.cv1, new.cv2, new.cv3, new.m = b, a, m.cv4, nn.ModuleList([m.cv2, m.cv3])
    return new


def c2_as_c3(m: nn.Module) -> nn.Module:
    """C2: cv2(cat(m(a), b)); C3: cv3(cat(m(cv1(x)), cv2(x))) with cv1 = a-half, cv2 = b-half: the same order."""
    from ultralytics.nn.modules.block import C3

    a, b = _halves(m.cv1, m.cv1.conv.out_channels // 2)
    new = _blank(C3, m)
    new.cv1, new.cv2, new.cv3, new.m = a, b, m.cv2, m.m
    return new


def c2psa_as_c3(m: nn.Module) -> nn.Module:
    """C2PSA: cv2(cat(a, m(b))); C3 concatenates (m(cv1(x)), cv2(x)), so cv3's input halves are swapped."""
    from ultralytics.nn.modules.block import C3

    c = m.cv1.conv.out_channels // 2
    a, b = _halves(m.cv1, c)
    cv3 = copy.deepcopy(m.cv2)
    _swap_input_halves(cv3, c)
    new = _blank(C3, m)
    new.cv1, new.cv2, new.cv3, new.m = b, a, cv3, m.m
    return new


def psa_as_c3(m: nn.Module) -> nn.Module:
    """PSA: b = b + attn(b); b = b + ffn(b) -- exactly one shortcut PSABlock, inside a C3 like C2PSA's."""
    from ultralytics.nn.modules.block import C3, PSABlock

    block = PSABlock.__new__(PSABlock)
    nn.Module.__init__(block)
    block.train(m.training)
    block.attn, block.ffn, block.add = m.attn, m.ffn, True
    c = m.cv1.conv.out_channels // 2
    a, b = _halves(m.cv1, c)
    cv3 = copy.deepcopy(m.cv2)
    _swap_input_halves(cv3, c)
    new = _blank(C3, m)
    new.cv1, new.cv2, new.cv3, new.m = b, a, cv3, nn.Sequential(block)
    return new


def _rewrites() -> dict[object, object]:
    """forward function -> rewrite. Keyed by forward so a subclass that changes forward is never rewritten wrongly."""
    from ultralytics.nn.modules import block as B

    return {
        B.C2f.forward: c2f_as_c3f,
        B.RepNCSPELAN4.forward: elan_as_c3f,
        B.C2.forward: c2_as_c3,
        B.C2PSA.forward: c2psa_as_c3,
        B.PSA.forward: psa_as_c3,
    }


def rewrite_split_blocks(model: nn.Module) -> list[str]:
    """Replace, in place, every block whose forward splits one conv's output; returns the rewritten names."""
    table = _rewrites()
    done: list[str] = []

    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}.{child_name}" if prefix else child_name
            fn = table.get(type(child).forward)
            if fn is not None and _has_conv_cv1(child):
                child = fn(child)
                setattr(parent, child_name, child)
                done.append(name)
            visit(child, name)

    visit(model, "")
    return done


def _has_conv_cv1(m: nn.Module) -> bool:
    cv1 = getattr(m, "cv1", None)
    return cv1 is not None and isinstance(getattr(cv1, "conv", None), nn.Conv2d) and cv1.conv.out_channels % 2 == 0
