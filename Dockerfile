# Group Admin: production image (gunicorn + whitenoise), running as a non-root user.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time; the key is only needed to import settings.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin groupadmin \
    && chown -R groupadmin /app

USER groupadmin

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"]

CMD ["scripts/docker-entrypoint"]
