"""Backends run admitted jobs on real capacity: Ray, Kubernetes, cloud, or a simulation.

Each implements the small ``Backend`` protocol of ``scheduler.backends.base``.
"""
