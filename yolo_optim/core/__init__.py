"""The shared core: what export, benchmark, pruning and tuning all need, written once.

- `images`: a dataset split's image files (one suffix set) and the letterbox every model input goes through;
- `tasks`: the Ultralytics validator of each task and the names of its mAP keys;
- `cpu`: the CPU's instruction-set flags, which decide the fast INT8/BF16 kernels;
- `results`: the result dataclasses (latency statistics, benchmark rows) that the benchmark writes and the report
  reads, so imports point down from both;
- `timing`: the timing harness (warm-up, bounded timed loop, robust statistics);
- `options`: `ExportOptions`, what a backend's export takes;
- `deploy`: "export this model to a target and time it", the one timing path of benchmark, pruning and tuning.

Nothing here imports a stage above it (export/, bench/, prune/, tune/, report/); backends are reached through the
`BACKENDS` registry.
"""
