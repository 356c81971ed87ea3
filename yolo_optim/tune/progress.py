"""The console line per finished or failed trial (a Ray Tune callback; Ray is imported at the top)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class TrialLog(Callback):
    """One console line per finished or failed trial (Ray's own progress table is shown only with verbose)."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        r = trial.last_result or {}
        print(f"tune: trial {trial.trial_id} done after {r.get('epoch', 0)} epochs, best objective "
              f"{r.get('best_objective', float('nan')):.5g}", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"tune: trial {trial.trial_id} failed; it is recorded and the search goes on", flush=True)
