"""Measuring variants: a careful latency harness, accuracy through Ultralytics, the environment, the runner."""
