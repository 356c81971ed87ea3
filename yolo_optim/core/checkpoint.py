"""Read a PyTorch checkpoint's metadata (task, names, training args) without unpickling its code or tensors.

`torch.load(weights_only=False)` on a user's file runs whatever its pickle says; `weights_only=True` refuses an
Ultralytics checkpoint, which pickles whole model objects. Metadata needs neither: this reader walks the pickle of
a torch zip checkpoint with every class replaced by an inert stand-in that only keeps its attributes, and never
loads a tensor, so reading a file's task and class names executes nothing from it and takes milliseconds.
"""

from __future__ import annotations

import collections
import copyreg
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

# Constructors the reader may run as themselves: plain containers only, never anything that executes code.
_SAFE = {("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "set"): set,
         ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice, ("builtins", "complex"): complex,
         ("copyreg", "_reconstructor"): copyreg._reconstructor}


class Stub:
    """Stands in for any class or function a pickle names: calling it does nothing, its state becomes attributes."""

    _qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:  # what a stand-in function "returned" is called too
        return Stub()

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) of objects with __slots__
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})

    def __repr__(self) -> str:
        return f"<{self._qualname}>"


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        return type(name, (Stub,), {"_qualname": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> None:  # tensor storages: never read
        return None


def read_checkpoint_dict(path: str | Path) -> Any:
    """The top-level object of a torch checkpoint with stand-ins for classes and None for tensors.

    Falls back to `torch.load(weights_only=True)` for a checkpoint in torch's legacy (non-zip) format; raises
    ValueError for a file that is neither.
    """
    p = Path(path)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise ValueError(f"{p} is a zip file without a torch pickle (data.pkl)")
            try:
                return _MetadataUnpickler(io.BytesIO(z.read(name))).load()
            except Exception as e:  # noqa: BLE001 - any malformed pickle is one kind of error for the caller
                raise ValueError(f"{p}: unreadable checkpoint pickle ({type(e).__name__})") from None
    import torch

    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{p} is not a torch checkpoint that can be read safely ({type(e).__name__})") from None
