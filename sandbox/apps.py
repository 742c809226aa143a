from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox workspace"

    def ready(self) -> None:
        """Serve the Segment client in-process; a malformed SANDBOX_FAULTS stops start-up with a clear
        message, not a 500 on first use."""
        from groups_app.services.segment_client import register_sandbox_transport
        from sandbox.api import OPERATIONS
        from sandbox.faults import parse_faults
        from sandbox.transport import SandboxAdapter

        register_sandbox_transport(SandboxAdapter)
        try:
            parse_faults(settings.SANDBOX_FAULTS, OPERATIONS)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
