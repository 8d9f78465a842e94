"""The benchmarks of s2s: serving load generation and baselines (benchmarks/serving, `s2s bench`), the
decoder-step, training-speed and reliability scripts. Not part of the serving image."""
