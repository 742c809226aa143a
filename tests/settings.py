"""Settings for the test suite: the project's settings, with test-only defaults.

DATABASE_URL / REDIS_URL / CACHE_URL from the environment still apply, so the
suite runs against SQLite and local memory, or PostgreSQL and Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-key-not-a-secret")
# Tests run in sandbox mode (client tests mock HTTP) with DEBUG off, as a demo server would:
# explicitly allowed, with a token of its own (the public default one is refused then).
os.environ["SEGMENT_MODE"] = "sandbox"
os.environ["SEGMENT_API_TOKEN"] = ""
os.environ["SANDBOX_ALLOW_WITHOUT_DEBUG"] = "true"
os.environ["SANDBOX_API_TOKEN"] = "sandbox-test-token"
# The test client speaks plain HTTP; the production defaults are checked in tests/test_deploy.py.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("CACHE_KEY_PREFIX", "group-admin-tests")

from dashboard.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# The test servers serve static files from the finders; WhiteNoise would look for collected files.
MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith("whitenoise")]  # noqa: F405
# Tasks are recorded, not run: a test that needs the worker runs a real one (tests/test_worker.py).
TASKS = {"default": {"BACKEND": "tests.task_backend.RecordingBackend"}}
# Mirror syncs in tests are not held back by the shared read budget.
MIRROR_READS_PER_SECOND = 10_000
# Jobs run item by item in the test's own thread (and database transaction), unthrottled.
JOB_CONCURRENCY = 1
JOB_WRITES_PER_MINUTE = 100_000
