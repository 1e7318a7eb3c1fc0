"""The trace simulator: gpupool's own decision code, and baselines, replaying real traces on a
virtual clock, with no database and no Ray (``gpupool simulate``)."""
