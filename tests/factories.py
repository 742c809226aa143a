from importlib import import_module

import factory
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from groups_app import roles


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        """UserFactory(role="Viewer") puts the user in that role's Django group."""
        if create and extracted:
            user.groups.add(role_group(extracted))


def role_group(name: str) -> Group:
    """The role's Django group; re-created by the roles migration if a transactional test flushed it."""
    if not Group.objects.filter(name=name).exists():
        import_module("groups_app.migrations.0002_roles").create_roles(apps, None)
    return Group.objects.get(name=name)


def viewer(**kwargs):
    return UserFactory(role=roles.VIEWER, **kwargs)


def help_desk(**kwargs):
    return UserFactory(role=roles.HELP_DESK, **kwargs)


def administrator(**kwargs):
    return UserFactory(role=roles.ADMINISTRATOR, **kwargs)
