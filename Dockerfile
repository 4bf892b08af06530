# syntax=docker/dockerfile:1
# One image for every role: its command picks api (default), daemon, mock or `db upgrade`.
#   docker build -t notifyctl .
#   docker run --rm -e NOTIFY_DATABASE_URL=postgresql://... notifyctl db upgrade
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/notifyctl
COPY pyproject.toml README.md ./
COPY notifyctl ./notifyctl
COPY daemon ./daemon
COPY mock ./mock
COPY web ./web
# Every dependency ships wheels for this platform: no compiler in either stage.
RUN /opt/notifyctl/bin/pip install . \
    && /opt/notifyctl/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/notifyctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NOTIFY_METRICS_HOST=0.0.0.0
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home notifyctl
COPY --from=build /opt/notifyctl /opt/notifyctl
USER 10001:10001
WORKDIR /app
EXPOSE 8000 8001 8002
# The API's check; compose and Kubernetes give the daemon (`notifyctl daemon --check`) and
# the mock their own.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["notifyctl"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
