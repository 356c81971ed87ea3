"""Training helpers shared by every mode that trains (baseline, pruning fine-tunes, tuning trials).

`amp` (the precision policy, light to import) and `trainers` (the trainer mixin, imports torch) are imported by name.
"""
