"""Fill the sandbox workspace with deterministic, realistic demo data."""

from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from sandbox.models import (
    ID_ALPHABET,
    ID_LENGTH,
    GroupPermission,
    Invite,
    Membership,
    Resource,
    Role,
    UserGroup,
    WorkspaceUser,
)

ROLES = [
    ("Workspace Owner", "Full read and edit access to everything in the workspace, including billing."),
    ("Workspace Member", "Access to the resources granted by their other roles."),
    ("Source Admin", "Read and edit sources, their settings, schema and connected destinations."),
    ("Source Read-only", "Read sources, their debugger, schema and connected destinations."),
    ("Warehouse Destination Admin", "Read and edit warehouse destinations."),
    ("Warehouse Destination Read-only", "Read warehouse destinations."),
    ("Functions Admin", "Create, edit and deploy functions."),
    ("Functions Read-only", "Read functions and their code."),
    ("Tracking Plan Admin", "Read and edit tracking plans."),
    ("Tracking Plan Read-only", "Read tracking plans."),
    ("Unify and Engage Admin", "Read and edit Unify spaces, audiences and computed traits."),
    ("Unify Read-only", "Read Unify spaces and profiles."),
    ("Engage User", "Create audiences and journeys in Engage spaces."),
    ("Engage Read-only", "Read Engage audiences and journeys."),
]

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Andrea",
    "Anika",
    "Arjun",
    "Beatriz",
    "Ben",
    "Camille",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "Dara",
    "Diego",
    "Elena",
    "Emeka",
    "Emil",
    "Fatima",
    "Felix",
    "Freya",
    "Gabriel",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Isaac",
    "Jamal",
    "Jana",
    "Jonas",
    "Kai",
    "Kenji",
    "Lara",
    "Leila",
    "Liam",
    "Lucia",
    "Malik",
    "Maria",
    "Mateo",
    "Maya",
    "Mei",
    "Nadia",
    "Noah",
    "Nora",
    "Oliver",
    "Omar",
    "Paula",
    "Priya",
    "Rafael",
    "Rosa",
    "Sami",
    "Sara",
    "Sofia",
    "Tariq",
    "Theo",
    "Uma",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Abbott",
    "Adeyemi",
    "Alvarez",
    "Andersen",
    "Bauer",
    "Becker",
    "Brennan",
    "Castillo",
    "Chowdhury",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Fontaine",
    "Garcia",
    "Gupta",
    "Haddad",
    "Hansen",
    "Ibrahim",
    "Ito",
    "Jensen",
    "Kaur",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Marino",
    "Meyer",
    "Morales",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Tanaka",
    "Torres",
    "Varga",
    "Wagner",
    "Walsh",
    "Weber",
    "Yamamoto",
    "Zhang",
]
TEAMS = [
    "Data Engineering",
    "Data Platform",
    "Analytics",
    "Marketing Ops",
    "Growth",
    "Lifecycle Marketing",
    "Product Analytics",
    "Mobile Apps",
    "Web Platform",
    "Customer Success",
    "Support Tier 2",
    "Sales Ops",
    "Finance Reporting",
    "Security",
    "Privacy Office",
    "Machine Learning",
    "Experimentation",
    "Partnerships",
    "Brand",
    "Paid Acquisition",
    "SEO",
    "Payments",
    "Checkout Squad",
    "Search Squad",
    "Identity Squad",
    "Notifications",
    "Billing",
    "Infrastructure",
    "SRE On-call",
    "QA Automation",
    "Design Systems",
    "Field Marketing",
    "EMEA Sales",
    "APAC Sales",
    "Legal",
    "People Analytics",
    "Executive Dashboards",
]
INVITE_DOMAINS = ["northwind-agency.example", "contoso-consulting.example", "fabrikam.example"]
LARGE_GROUP = "All Employees"
EMPTY_GROUP = "New Hires (no members yet)"
TRICKY_GROUP = 'R&D <Zürich> "Ångström" Team'
# A privileged group (it grants Workspace Owner, one of PRIVILEGED_ROLES by default), so that a
# newcomer meets the privileged-group and two-person rules; the last group of a workspace of at
# least PRIVILEGED_FROM groups, so smaller test workspaces keep their shape.
PRIVILEGED_GROUP = "Workspace Owners"
PRIVILEGED_FROM = 10
PRIVILEGED_MEMBERS = 3
WORKSPACE_NAME = "Acme Corp"
RESOURCES = {
    "SOURCE": [
        "iOS App",
        "Android App",
        "Website",
        "Checkout Service",
        "Marketing Site",
        "Support Widget",
        "Billing Events",
        "Salesforce",
        "Zendesk",
        "Stripe",
    ],
    "WAREHOUSE": ["Snowflake Production", "BigQuery Analytics", "Redshift Legacy"],
    "SPACE": ["Production Space", "Staging Space"],
    "FUNCTION": ["Enrich Orders", "Hash PII", "Route Leads"],
}


class Command(BaseCommand):
    help = "Seed the sandbox workspace with demo groups, users, invites, roles and permissions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--groups", type=int, default=40, help="Number of groups (at least 3).")
        parser.add_argument(
            "--users", type=int, default=600, help="Number of workspace users (at least 450)."
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="Random seed: the same seed gives the same data."
        )
        parser.add_argument("--reset", action="store_true", help="Delete the sandbox's data first.")

    def handle(self, *args: Any, groups: int, users: int, seed: int, reset: bool, **options: Any) -> None:
        if groups < 3 or users < 450:
            self.stderr.write("--groups must be at least 3 and --users at least 450.")
            raise SystemExit(2)
        with transaction.atomic():
            if reset:
                UserGroup.objects.all().delete()
                WorkspaceUser.objects.all().delete()
                Role.objects.all().delete()
                Resource.objects.all().delete()
            elif UserGroup.objects.exists() or WorkspaceUser.objects.exists():
                self.stdout.write(
                    "The sandbox workspace already has data; nothing changed (use --reset to start over)."
                )
                return
            Seeder(random.Random(seed)).seed(group_count=groups, user_count=users)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded the sandbox: {UserGroup.objects.count()} groups, {WorkspaceUser.objects.count()} users, "
                f"{Invite.objects.count()} invites, {Role.objects.count()} roles."
            )
        )


class Seeder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new_id(self) -> str:
        return "".join(self.rng.choice(ID_ALPHABET) for _ in range(ID_LENGTH))

    def seed(self, *, group_count: int, user_count: int) -> None:
        roles = Role.objects.bulk_create(
            [Role(id=self.new_id(), name=name, description=description) for name, description in ROLES]
        )
        resources = {kind: [(self.new_id(), label) for label in labels] for kind, labels in RESOURCES.items()}
        workspace = self.new_id()
        Resource.objects.bulk_create(
            [Resource(id=workspace, type="WORKSPACE", name=WORKSPACE_NAME)]
            + [
                Resource(
                    id=resource_id,
                    type=kind,
                    name=label,
                    function_type="SOURCE" if kind == "FUNCTION" else "",
                )
                for kind, pairs in resources.items()
                for resource_id, label in pairs
            ]
        )
        people = WorkspaceUser.objects.bulk_create(self.users(user_count))

        names = [LARGE_GROUP, EMPTY_GROUP, TRICKY_GROUP]
        teams = group_count - 3 - (group_count >= PRIVILEGED_FROM)
        names += [
            TEAMS[i % len(TEAMS)] + ("" if i < len(TEAMS) else f" {i // len(TEAMS) + 1}")
            for i in range(teams)
        ]
        if group_count >= PRIVILEGED_FROM:
            names.append(PRIVILEGED_GROUP)
        groups = UserGroup.objects.bulk_create([UserGroup(id=self.new_id(), name=name) for name in names])

        memberships, invites, permissions = [], [], []
        for group in groups:
            if group.name == EMPTY_GROUP:
                continue
            if group.name == LARGE_GROUP:
                members = self.rng.sample(people, max(450, int(len(people) * 0.8)))
                invite_count = 30
            elif group.name == PRIVILEGED_GROUP:
                members = self.rng.sample(people, PRIVILEGED_MEMBERS)
                invite_count = 0
            else:
                members = self.rng.sample(people, self.rng.randint(3, 40))
                invite_count = self.rng.choice((0, 0, 1, 2, 4))
            memberships += [Membership(group=group, user=user) for user in members]
            invites += [Invite(group=group, email=email) for email in self.invite_emails(invite_count)]
            permissions += self.permissions(group, roles, resources, workspace)
        Membership.objects.bulk_create(memberships)
        Invite.objects.bulk_create(invites)
        GroupPermission.objects.bulk_create(permissions)

    def invite_emails(self, count: int) -> list[str]:
        """Emails of people who are not workspace users yet (contractors, new hires)."""
        emails: dict[str, None] = {}
        while len(emails) < count:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            domain = self.rng.choice(INVITE_DOMAINS)
            emails.setdefault(f"{first}.{last}@{domain}".lower(), None)
        return list(emails)

    def users(self, count: int) -> list[WorkspaceUser]:
        users, seen = [], set()
        while len(users) < count:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            email = f"{first}.{last}@acme-corp.example".lower()
            suffix = 2
            while email in seen:
                email = f"{first}.{last}{suffix}@acme-corp.example".lower()
                suffix += 1
            seen.add(email)
            users.append(WorkspaceUser(id=self.new_id(), name=f"{first} {last}", email=email))
        return users

    def permissions(
        self, group: UserGroup, roles: list[Role], resources: dict[str, list[tuple[str, str]]], workspace: str
    ) -> list[GroupPermission]:
        by_name = {role.name: role for role in roles}
        whole_workspace = {LARGE_GROUP: "Workspace Member", PRIVILEGED_GROUP: "Workspace Owner"}
        if group.name in whole_workspace:
            return [
                GroupPermission(
                    group=group,
                    role=by_name[whole_workspace[group.name]],
                    resources=[{"id": workspace, "type": "WORKSPACE"}],
                )
            ]
        chosen = []
        for _ in range(self.rng.randint(1, 3)):
            kind = self.rng.choice(list(RESOURCES))
            role_names = {
                "SOURCE": ("Source Admin", "Source Read-only"),
                "WAREHOUSE": ("Warehouse Destination Admin", "Warehouse Destination Read-only"),
                "SPACE": ("Unify and Engage Admin", "Unify Read-only", "Engage User", "Engage Read-only"),
                "FUNCTION": ("Functions Admin", "Functions Read-only"),
            }[kind]
            picked = self.rng.sample(resources[kind], self.rng.randint(1, min(3, len(resources[kind]))))
            chosen.append(
                GroupPermission(
                    group=group,
                    role=by_name[self.rng.choice(role_names)],
                    resources=[{"id": resource_id, "type": kind} for resource_id, _ in sorted(picked)],
                )
            )
        return chosen
