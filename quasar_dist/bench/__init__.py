"""`quasar bench`: side-by-side benchmarks in one process (docs/benchmarks.md has the results)."""
