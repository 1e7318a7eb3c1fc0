"""The policies a simulation compares: gpupool's own, and baselines from their published
definitions (``POLICIES`` by name)."""
