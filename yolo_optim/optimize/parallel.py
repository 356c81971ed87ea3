"""Run a batch of independent tasks here, one after another, or as Ray tasks across a cluster (`address=`).

Either way results come back one by one as tasks finish, each as (task, result, error): a failing task is
reported, never raised, so the search goes on with the others. Ray workers must see the run folder at the same
path (one machine, or a shared filesystem), as they write their stage outputs there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import OptimError, describe

# Settings a Ray worker needs to behave like this process (cache, offline mode, Ultralytics' config folder).
_FORWARDED_ENV = ("YOLO_OPTIM_CACHE", "YOLO_OFFLINE", "YOLO_CONFIG_DIR", "YOLO_OPTIM_DEBUG")


def _error_text(e: BaseException) -> str:
    return describe(e, 400, all_lines=True)


class LocalExecutor:
    """Tasks run in this process, in order."""

    where = "this machine"
    slots = 1  # tasks that can run at once

    def map(self, fn: Callable[..., dict[str, Any]], root: str, tasks: Iterable[Any],
            on_start: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, dict | None, str | None]]:
        for task in tasks:
            if on_start:
                on_start(task)
            try:
                yield task, fn(root, task), None
            except (KeyboardInterrupt, SystemExit):
                raise
            except OptimError as e:  # an expected refusal (a goal out of reach): its message says why
                yield task, None, str(e)
            except Exception as e:  # one broken candidate must not stop the search
                if os.environ.get("YOLO_OPTIM_DEBUG"):
                    raise
                yield task, None, _error_text(e)

    def close(self) -> None:
        pass


class RayExecutor:
    """Tasks run as Ray tasks on the cluster at `address`, `cpus` CPUs each; results in order of completion."""

    def __init__(self, address: str, cpus: int) -> None:
        try:
            import ray
        except ImportError:
            raise OptimError("address= runs the search on a Ray cluster, but Ray is not installed; "
                             "pip install 'ray[tune]' or drop address=") from None
        self._started = False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline sites: no usage-stats upload
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
            try:
                ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=True,
                         include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise OptimError(f"cannot connect to the Ray cluster at address={address} "
                                 f"({_error_text(e)}); start it with `ray start --head` or fix address=") from None
            self._started = True
        self.ray = ray
        self.cpus = cpus
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 0)) // cpus)
        self.where = f"the Ray cluster at {address} ({len(nodes)} nodes, " \
                     f"{int(ray.cluster_resources().get('CPU', 0))} CPUs)"

    def map(self, fn: Callable[..., dict[str, Any]], root: str, tasks: Iterable[Any],
            on_start: Callable[[Any], None] | None = None) -> Iterator[tuple[Any, dict | None, str | None]]:
        ray = self.ray
        remote = ray.remote(num_cpus=self.cpus, max_retries=0)(fn)
        pending = {}
        for task in tasks:
            if on_start:
                on_start(task)
            pending[remote.remote(root, task)] = task
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            task = pending.pop(ref)
            try:
                yield task, ray.get(ref), None
            except KeyboardInterrupt:
                for other in pending:
                    ray.cancel(other, force=True)
                raise
            except Exception as e:  # noqa: BLE001 -- RayTaskError wraps the worker's exception; its cause says what failed
                cause = getattr(e, "cause", None) or e
                yield task, None, str(cause) if isinstance(cause, OptimError) else _error_text(cause)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def make_executor(address: str | None, cpus: int) -> LocalExecutor | RayExecutor:
    return RayExecutor(address, cpus) if address else LocalExecutor()
