"""Step 6, `mixer loop`: proxy sweeps (cached, sequential or on Ray) -> solver -> weights.json; the demo."""
