# syntax=docker/dockerfile:1
# The one image for every process of the service (build from the repo root, nothing else needed):
#   docker build -t certs:0.1.0 .
#   API:        docker run -p 8000:8000 --env-file prod.env certs:0.1.0
#               (default CMD: gunicorn -c gunicorn.conf.py wsgi:app)
#   worker:     docker run --env-file prod.env certs:0.1.0 certs worker
#   scheduler:  docker run --env-file prod.env certs:0.1.0 certs scheduler
#   migrations: docker run --env-file prod.env certs:0.1.0 certs db upgrade
# The base image by digest (the multi-arch index of python:3.11-slim), so a rebuild starts from
# the same bytes whatever the tag points to today. The digest is the one published for the tag
# when it was pinned; refresh it deliberately (README "Reproducible installs"):
#   docker buildx imagetools inspect python:3.11-slim   # the "Digest:" line
# or build from another base with --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest>.
# tests/deploy/test_dockerfile.py refuses a base image without a digest.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- builder: compilers allowed here, never in the final image -------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first (the layer is reused while only application code changes): exactly the
# versions of requirements.lock, each download checked against its sha256 (`make lock`).
COPY requirements.lock requirements-build.lock ./
RUN pip install --require-hashes -r requirements-build.lock \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY infra/ infra/
COPY tenancy/ tenancy/
COPY jobs/ jobs/
COPY api/ api/
COPY certifications/ certifications/
COPY workers/ workers/
COPY runtime/ runtime/
COPY cli/ cli/
COPY migrations/ migrations/
COPY bench/ bench/
# The project's own wheel (built with the locked setuptools, no download), installed without
# touching the locked dependencies.
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && /opt/venv/bin/pip install --no-deps --no-index /tmp/dist/certs-*.whl \
 && /opt/venv/bin/python -m compileall -q /opt/venv

# ---- runtime: slim, non-root, read-only friendly --------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="certs" \
      org.opencontainers.image.description="Multi-tenant certifications backend (API, worker, scheduler)"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CERTS_ENV=production \
    LOG_FORMAT=json \
    HOME=/tmp \
    CERTS_INSTANCE_DIR=/tmp/instance
# PROMETHEUS_MULTIPROC_DIR: gunicorn.conf.py and `certs worker` make a fresh one under /tmp when
# unset; the Helm chart sets it to a memory-backed emptyDir.
RUN groupadd --system --gid 10001 certs \
 && useradd --system --uid 10001 --gid certs --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin certs
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Only the entry points live here; the packages are installed in /opt/venv (owned by root, so
# the process cannot modify its own code).
COPY wsgi.py gunicorn.conf.py alembic.ini ./
USER 10001:10001
EXPOSE 8000 9191
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
