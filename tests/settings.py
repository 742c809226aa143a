"""Settings for the test suite: the project's settings, with test-only defaults.

DATABASE_URL / REDIS_URL / CACHE_URL from the environment still apply, so the
suite runs against SQLite and local memory, or PostgreSQL and Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-key-not-a-secret")
os.environ["SEGMENT_API_TOKEN"] = ""  # tests run in sandbox mode; client tests mock HTTP
os.environ.setdefault("CACHE_KEY_PREFIX", "group-admin-tests")

from dashboard.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# The test servers serve static files from the finders; WhiteNoise would look for collected files.
MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith("whitenoise")]  # noqa: F405
