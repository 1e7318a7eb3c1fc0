"""The front door: the ``gpupool`` CLI today; the REST API and web pages build on it.

The portal writes desired state and reads the books; it never calls a backend itself.
"""
