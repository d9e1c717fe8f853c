"""On-demand benchmarks (never run by `make test`). `make bench` runs them and writes docs/benchmarks.md."""
