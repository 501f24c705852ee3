# The image the Kubernetes work pool runs: locked dependencies in their own cached layer,
# the project and a parsed dbt manifest on top, a non-root user, and no secret in any layer.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    PATH=/opt/prefect/elt/.venv/bin:$PATH

WORKDIR /opt/prefect/elt
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies only: this layer changes when uv.lock does, not when the code does.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache

# The code in one layer (.dockerignore lists what the image holds): each layer costs a copy of
# the whole tree when built without a daemon (buildah's vfs storage).
COPY . .
RUN uv sync --frozen --no-dev --no-cache \
    && dbt parse --project-dir dbt --profiles-dir dbt --target-path target \
    && groupadd --gid 10001 elt \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin elt \
    && mkdir -p data dbt/logs && chown -R 10001:10001 data dbt/target dbt/logs

# The Kubernetes job template runs pods as this uid (runAsNonRoot needs it numeric).
USER 10001:10001
