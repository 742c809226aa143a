# Group Admin: production image (gunicorn + whitenoise), running as a non-root user.
# The base image is pinned to an exact release; bump it deliberately.
FROM python:3.12.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# Every package, transitive ones included, is checked against the hashes in the lock
# (regenerate it with `make lock` after changing requirements.txt).
COPY requirements.lock .
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY . .

# Static files are collected at build time; the key is only needed to import settings.
RUN SECRET_KEY=collectstatic-only SEGMENT_MODE=live SEGMENT_API_TOKEN=collectstatic-only \
        python manage.py collectstatic --no-input \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin groupadmin \
    && chown -R groupadmin /app

USER groupadmin

EXPOSE 8000

# Liveness only: the process answers (readiness, with the database, cache and Segment, is /readyz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "scripts/probe", "/healthz"]

# Serves only: apply migrations first, as the owner of the tables (compose's `migrate` service, or
# `docker run … python manage.py migrate` with DATABASE_URL naming the owner); see README, Deploy.
CMD ["scripts/docker-entrypoint"]
