"""mmsim benchmarks: ``python -m benchmarks`` prints a table and writes JSON.

Speed is reported as ratios against a baseline measured in the same run (numba vs
numpy+scipy greeks, engine vs bare simpy), because the machines are shared and noisy.
"""
