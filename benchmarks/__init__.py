"""Reproducible speed checks of cymetica-mcp against references measured in the same run.

`python -m benchmarks.run --size quick|full` prints a table of issue 6's targets and writes the same as
JSON to `benchmarks/results/`. Data are generated once per size and seed under `benchmarks/data/`.
"""
