from django.apps import AppConfig


class GroupsAppConfig(AppConfig):
    name = "groups_app"
    verbose_name = "Group Admin"

    def ready(self) -> None:
        """Connect the signal handlers, and register the background tasks with the queue that
        services enqueue them through (services never import the tasks)."""
        from groups_app import signals, tasks  # noqa: F401 - importing registers the tasks
        from groups_app.services import metrics

        signals.connect()
        metrics.observe_segment_calls()
