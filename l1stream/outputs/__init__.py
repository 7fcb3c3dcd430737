"""What a run writes besides its result: the per-row loss dataset and the metrics history."""
