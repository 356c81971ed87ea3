"""Training helpers shared by every mode that trains (baseline, pruning fine-tunes, tuning trials)."""

from .amp import AMP_MODES, AmpPolicy, cpu_bf16_instructions, normalize_amp, resolve_amp
from .trainers import MixedPrecisionMixin, read_amp_record, task_trainer, with_mixed_precision

__all__ = ["AMP_MODES", "AmpPolicy", "MixedPrecisionMixin", "cpu_bf16_instructions", "normalize_amp",
           "read_amp_record", "resolve_amp", "task_trainer", "with_mixed_precision"]
