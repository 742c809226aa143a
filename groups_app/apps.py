from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GroupsAppConfig(AppConfig):
    name = "groups_app"
    verbose_name = "Group Admin"

    def ready(self) -> None:
        from groups_app import checks, database_roles, signals  # noqa: F401 - checks register on import

        signals.connect()
        post_migrate.connect(database_roles.grant_after_migrate, sender=self)
