//! Benchmarks for the workspace. The suites arrive with their issue.
