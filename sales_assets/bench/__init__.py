"""`sales-pipeline bench`: every pipeline stage timed at scale, beside a DuckDB baseline and the JSON parse limit.

`harness.run_bench` orchestrates; `stages` holds the code each stage runs in its own process;
`measure` runs a process and samples its tree's peak RSS. Results go to `bench/results/`.
"""
