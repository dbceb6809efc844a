# The action's container. The runner mounts the workspace at /github/workspace and makes it the
# working directory, so there is no WORKDIR here and the package is installed, not copied in place.
# A literal tag, not a build argument: Dependabot only updates a FROM it can read.
FROM python:3.12-slim

LABEL org.opencontainers.image.title="batch-arbiter" \
      org.opencontainers.image.description="Run scheduled LLM workloads through provider batch APIs at half price"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements.lock /opt/batch-arbiter/requirements.lock
RUN python -m pip install --no-cache-dir -r /opt/batch-arbiter/requirements.lock

COPY pyproject.toml README.md /opt/batch-arbiter/
COPY src /opt/batch-arbiter/src
RUN python -m pip install --no-cache-dir --no-deps /opt/batch-arbiter \
    && python -c "import batch_arbiter.cli"

# Exec form straight into Python: a /bin/sh wrapper would drop the hyphenated INPUT_* variables.
ENTRYPOINT ["python", "-m", "batch_arbiter"]
