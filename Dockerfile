# syntax=docker/dockerfile:1.7
# One multi-target image build for every Sift service, from the uv workspace and its lock.
#   docker build --target collector --build-arg SERVICE=collector -t sift-collector .
# Targets: gateway, collector, analyzer, archiver; SERVICE names the same one, so each image
# holds that service and what it depends on, nothing else (no other service, no dev tools,
# no embedded PostgreSQL). vLLM runs from its own official image.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
ARG UV_VERSION=0.13.9
ARG SERVICE
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<gateway|collector|analyzer|archiver>" && false)
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The service's own venv from the one lock: its dependencies first (cached while only source
# changes), then the service and sift-common themselves.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/llm-gateway/pyproject.toml services/llm-gateway/
COPY services/collector/pyproject.toml services/collector/
COPY services/analyzer/pyproject.toml services/analyzer/
COPY services/archiver/pyproject.toml services/archiver/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "sift-${SERVICE}"
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "sift-${SERVICE}"

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --create-home --uid 10001 sift
COPY --from=builder --chown=sift:sift /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
USER sift
WORKDIR /home/sift
# Services exit 0 on SIGTERM after draining; compose gives them stop_grace_period to do so.
STOPSIGNAL SIGTERM

FROM runtime AS gateway
ENV SIFT_GATEWAY_HOST=0.0.0.0
ENV HEALTH_PORT=8100
EXPOSE 8100
CMD ["sift-gateway"]

FROM runtime AS collector
ENV SIFT_COLLECTOR_HOST=0.0.0.0
ENV HEALTH_PORT=8110
EXPOSE 8110
CMD ["sift-collector"]

FROM runtime AS analyzer
ENV SIFT_ANALYZER_HOST=0.0.0.0
ENV HEALTH_PORT=8120
EXPOSE 8120
CMD ["sift-analyzer"]

FROM runtime AS archiver
ENV SIFT_ARCHIVER_HOST=0.0.0.0
ENV HEALTH_PORT=8130
EXPOSE 8130
CMD ["sift-archiver"]
