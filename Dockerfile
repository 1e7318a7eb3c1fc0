# syntax=docker/dockerfile:1
# One image runs every part of gpupool: `gpupool serve` (portal, and the scheduler when
# GPUPOOL_RUN_SCHEDULER=true) and `gpupool init` (the schema migration the Helm chart runs as a
# pre-install/pre-upgrade hook). Build: docker build -t gpupool:0.1.0 .
#
# Pin the base by digest in your registry mirror for reproducible builds
# (python:3.11-slim-bookworm@sha256:...); a named tag is the least this file accepts.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the project's wheel, installed with its runtime dependencies (no dev extras) into
#    a virtual environment that the runtime stage copies whole.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY quotas ./quotas
COPY jobs ./jobs
COPY scheduler ./scheduler
COPY portal ./portal
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/gpupool \
 && /opt/gpupool/bin/pip install /wheels/gpupool-*.whl \
 && /opt/gpupool/bin/pip uninstall --yes pip

# -- runtime: the virtual environment, a numeric unprivileged user, nothing else.
FROM ${PYTHON_IMAGE} AS runtime
ARG GPUPOOL_UID=10001
RUN groupadd --system --gid ${GPUPOOL_UID} gpupool \
 && useradd --system --uid ${GPUPOOL_UID} --gid ${GPUPOOL_UID} --no-create-home \
        --home-dir /var/lib/gpupool --shell /usr/sbin/nologin gpupool \
 && install -d -o ${GPUPOOL_UID} -g ${GPUPOOL_UID} -m 0700 /var/lib/gpupool
COPY --from=build /opt/gpupool /opt/gpupool
ENV PATH=/opt/gpupool/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/gpupool \
    GPUPOOL_DATA_DIR=/var/lib/gpupool \
    GPUPOOL_PORT=8000
VOLUME ["/var/lib/gpupool"]
WORKDIR /var/lib/gpupool
USER 10001:10001
EXPOSE 8000
# For plain `docker run`; Kubernetes ignores it and uses the chart's probes instead. Liveness
# only (/healthz): /readyz answers 503 in a portal-only process, which runs no scheduler.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GPUPOOL_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["gpupool"]
CMD ["serve", "--host", "0.0.0.0"]
