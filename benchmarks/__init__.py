"""Speed and memory benchmarks (run as modules: ``python -m benchmarks.<name>``); not tests."""
