"""Scheduled runs: config files, quality gates, and the runner that applies store,
gates, history and outputs in the right order."""
