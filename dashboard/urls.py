from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from groups_app.views.accounts import AuditedPasswordResetView, SignInView, sign_out
from groups_app.views.health import healthz, metrics, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", sign_out, name="logout"),
    path("oidc/", include("groups_app.oidc_urls")),
    path("admin/", admin.site.urls),
    path("", include("groups_app.api.urls")),
    path("", include("groups_app.urls")),
]

if settings.LOCAL_LOGIN_ENABLED:
    urlpatterns += [
        path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
        path(
            "accounts/password_change/done/",
            auth_views.PasswordChangeDoneView.as_view(),
            name="password_change_done",
        ),
    ]

# Password reset mails a sign-in link: only where a real mail server is configured.
if settings.PASSWORD_RESET_ENABLED:
    urlpatterns += [
        path("accounts/password_reset/", AuditedPasswordResetView.as_view(), name="password_reset"),
        path(
            "accounts/password_reset/done/",
            auth_views.PasswordResetDoneView.as_view(),
            name="password_reset_done",
        ),
        path(
            "accounts/reset/<uidb64>/<token>/",
            auth_views.PasswordResetConfirmView.as_view(),
            name="password_reset_confirm",
        ),
        path(
            "accounts/reset/done/",
            auth_views.PasswordResetCompleteView.as_view(),
            name="password_reset_complete",
        ),
    ]

# The sandbox workspace exists only in sandbox mode (SEGMENT_MODE=sandbox).
if settings.SANDBOX_MODE:
    urlpatterns.insert(0, path("sandbox/api/", include("sandbox.urls")))
