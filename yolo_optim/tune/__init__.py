"""Hyperparameter search on Ray Tune: spaces, searchers, the trial, objectives, results (see api.py).

`yolo_optim.tune` names both this package and the public function `yolo_optim.tune(model, ...)`. Python binds a
package's name on its parent once any of its modules is imported, which would hide the function; so the package
itself is callable and forwards to `api.tune`, and both spellings work in any import order.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .api import tune

        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
