"""mmsim benchmarks: ``python -m benchmarks`` prints a table and writes JSON.

CPU time (``time.process_time``; ``getrusage`` for child processes), min and median of
repeats, on shared, noisy machines. Baselines are plain library calls measured in the
same run (bare ``simpy.Environment`` timeouts, ``python -c pass``); scenarios run with
their shipped settings. ``--mmsim DIR`` measures another checkout's ``mmsim`` with the
same cases, ``--compare BEFORE AFTER`` prints the two as a Markdown table.
"""
