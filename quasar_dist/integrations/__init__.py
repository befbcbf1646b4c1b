"""Front ends other tools already run, wired to quasar-dist (lm_eval: lm-evaluation-harness)."""
