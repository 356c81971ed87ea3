"""Results of benchmarks: the versioned results.json schema, tables, the Pareto front, plots, merging runs."""
