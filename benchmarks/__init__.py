"""Speed and memory benchmarks against the peers: ``python -m benchmarks [--quick]`` prints the
table (see docs/benchmarks.md); single modules run as ``python -m benchmarks.<name>``. Not tests."""
