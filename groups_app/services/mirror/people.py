"""The per-person summary of the mirror (`MirrorPerson`): one row a person with their name and
how many groups and invites they have, so People never groups a million memberships.

Recounted for the emails a write touched, in the writer's transaction (a group's page and
People move together); rebuilt whole, in one statement, after the first full sync.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from groups_app.models import MirrorMember, MirrorPerson

CHUNK = 1000


def _summary_select(where: str) -> str:
    # Only the quoted table name and fixed text are formatted in; every value is a parameter.
    members = connection.ops.quote_name(MirrorMember._meta.db_table)
    select = "SELECT email, MAX(name), MAX(name_key), COUNT(*), SUM(CASE WHEN kind = %s THEN 1 ELSE 0 END)"
    return f"{select} FROM {members} {where} GROUP BY email"


def _insert_into() -> str:
    people = connection.ops.quote_name(MirrorPerson._meta.db_table)
    return f"INSERT INTO {people} (email, name, name_key, group_count, invite_count) "


def people_recount(emails: Iterable[str]) -> None:
    """Rewrite the summaries of these (lower-cased) emails from their memberships; a person in
    no group any more has none."""
    emails = sorted(set(emails))
    for start in range(0, len(emails), CHUNK):
        chunk = emails[start : start + CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        with transaction.atomic(), connection.cursor() as cursor:
            MirrorPerson.objects.filter(email__in=chunk).delete()
            cursor.execute(
                _insert_into() + _summary_select(f"WHERE email IN ({marks})"),
                [MirrorMember.Kind.INVITE, *chunk],
            )


def people_rebuild() -> None:
    """Rewrite every summary from the memberships, in one transaction (readers see the old or
    the new ones)."""
    with transaction.atomic(), connection.cursor() as cursor:
        MirrorPerson.objects.all().delete()
        cursor.execute(_insert_into() + _summary_select(""), [MirrorMember.Kind.INVITE])
