"""`yolo-optim optimize`: the most accurate variant of a trained model that meets a latency budget on a device."""

from .api import OptimizeResult, optimize, run_optimize

__all__ = ["OptimizeResult", "optimize", "run_optimize"]


class _CallableModule(__import__("types").ModuleType):
    """`yolo_optim.optimize` is both this package and the public function: importing the package binds the name
    `optimize` on `yolo_optim` to the package, so calling the package runs the function (as for `export`)."""

    def __call__(self, *args, **kwargs) -> OptimizeResult:
        return optimize(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
