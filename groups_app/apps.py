from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GroupsAppConfig(AppConfig):
    name = "groups_app"
    verbose_name = "Group Admin"

    def ready(self) -> None:
        """Connect the signal handlers and the grants made after each migrate, register the system
        checks, the metrics observer of Segment calls, and the background tasks with the queue that
        services enqueue them through (services never import the tasks)."""
        from groups_app import checks, database_roles, signals, tasks  # noqa: F401 - importing registers them
        from groups_app.services import metrics

        signals.connect()
        metrics.observe_segment_calls()
        post_migrate.connect(database_roles.grant_after_migrate, sender=self)
