from django.apps import AppConfig


class GroupsAppConfig(AppConfig):
    name = "groups_app"
    verbose_name = "Group Admin"

    def ready(self) -> None:
        from groups_app import signals

        signals.connect()
