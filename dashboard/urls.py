from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from groups_app.views.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("groups_app.urls")),
]

# The sandbox workspace exists only in sandbox mode (SEGMENT_MODE=sandbox).
if settings.SANDBOX_MODE:
    urlpatterns.insert(0, path("sandbox/api/", include("sandbox.urls")))
