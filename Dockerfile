# Eventline: one image for every process (api, processor, projector, saga) and
# for the one-shot migration job; the compose service picks the subcommand.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Inside a container the loopback default (127.0.0.1) would make a published port unreachable.
ENV EVENTLINE_API_HOST=0.0.0.0

WORKDIR /app

# Dependencies first, in their own layer, so editing the code does not reinstall
# them. The list comes from pyproject.toml (runtime dependencies only, no dev
# extras), the versions from constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. README.md is needed because pyproject.toml names it as the readme.
COPY README.md ./
COPY app ./app
COPY projections ./projections
RUN pip install -c constraints.txt . \
    && rm -rf build ./*.egg-info

# Alembic runs from /app: alembic.ini points at migrations/ relative to itself,
# and migrations/env.py reads EVENTLINE_DATABASE_URL like the service does.
COPY alembic.ini ./
COPY migrations ./migrations

# The files stay root-owned and read-only for the service user.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin eventline
USER eventline

EXPOSE 8000
ENTRYPOINT ["eventline"]
CMD ["run"]
