"""The front door: the REST API, the Ray-compatible job API, sign-in, and the ``gpupool`` CLI.

The portal writes desired state and reads the books; it starts and stops nothing on a backend
(the one thing it reads from a cluster is a job's output).
"""

import warnings

# Authlib nudges its httpx users towards httpx2 at import; httpx is what gpupool depends on.
warnings.filterwarnings("ignore", message="The httpx module is deprecated", module="authlib")
