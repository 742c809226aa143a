"""Access-request and review pages: who sees what, each transition, htmx toggles, exports."""

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from groups_app.models import AccessRequest, AuditEntry, Review
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db


def html(response):
    return response.content.decode()


@pytest.fixture
def team(demo_workspace):
    return next(
        g
        for g in demo_workspace.values()
        if g.name != "All Employees" and "<" not in g.name and g.memberships.exists()
    )


@pytest.fixture
def vera(client):
    user = viewer(username="vera", email="vera@example.com")
    return user


def as_user(client, user):
    client.force_login(user)
    return client


def test_request_form_lists_groups_and_files_for_yourself(client, vera, team):
    as_user(client, vera)
    form = client.get(reverse("groups:request-new"), {"group": team.id})
    assert f'<option value="{team.id}" selected>{team.name}</option>' in html(form)
    assert 'name="emails"' not in html(form)  # viewers request for themselves only

    response = client.post(
        reverse("groups:request-new"),
        {"group": team.id, "justification": "Reporting", "needed_until": ""},
        follow=True,
    )

    assert f"Requested access to {team.name} for vera@example.com." in html(response)
    assert "My access requests" in html(response)
    assert AccessRequest.objects.get().email == "vera@example.com"


def test_request_form_errors_stay_by_their_fields(client, vera, team):
    as_user(client, vera)

    response = client.post(reverse("groups:request-new"), {"group": "", "justification": ""})

    assert response.status_code == 422
    assert html(response).count("This field is required.") == 2


def test_duplicate_request_links_to_the_existing_one(client, vera, team):
    as_user(client, vera)
    data = {"group": team.id, "justification": "Reporting"}
    client.post(reverse("groups:request-new"), data)

    response = client.post(reverse("groups:request-new"), data)

    existing = AccessRequest.objects.get()
    assert "No request was filed." in html(response)
    assert f'href="{reverse("groups:request", args=[existing.pk])}"' in html(response)


def test_help_desk_files_for_others_and_sees_the_queue_with_a_badge(client, team):
    hana = help_desk(username="hana", email="hana@example.com")
    as_user(client, hana)
    member = team.memberships.first().user.email

    response = client.post(
        reverse("groups:request-new"),
        {"group": team.id, "emails": f"one@partner.example; {member}", "justification": "Project"},
        follow=True,
    )

    page = html(response)
    assert "Requested access" in page and f"{member} is already a member" in page
    queue = html(client.get(reverse("groups:requests")))
    assert "one@partner.example" in queue and "oldest first" in queue
    # She filed it: someone else decides it, so it is not counted for her nor ticked.
    assert 'title="Requests you can act on"' not in queue and "Not yours to decide" in queue
    as_user(client, help_desk(username="hugo", email="hugo@example.com"))
    queue = html(client.get(reverse("groups:requests")))
    assert 'title="Requests you can act on">1<' in queue and 'name="ids"' in queue


def test_viewer_sees_only_their_own_requests_and_cannot_open_others(client, vera, team):
    other = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="x@example.com",
        requester_username="x",
        justification="j",
    )
    as_user(client, vera)

    assert "x@example.com" not in html(client.get(reverse("groups:requests")))
    assert client.get(reverse("groups:request", args=[other.pk])).status_code == 404
    assert client.post(reverse("groups:request-decide", args=[other.pk, "approve"])).status_code == 404


def test_approve_from_the_detail_page(client, vera, team):
    request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="vera@example.com",
        requester=vera,
        requester_username="vera",
        justification="j",
    )
    as_user(client, help_desk(username="hana", email="hana@example.com"))
    page = html(client.get(reverse("groups:request", args=[request.pk])))
    assert "Approve and add vera@example.com" in page and "Deny" in page

    response = client.post(reverse("groups:request-decide", args=[request.pk, "approve"]), follow=True)

    assert f"Approved: vera@example.com was invited to {team.name}; the access starts when" in html(response)
    assert "Membership change" in html(response)
    request.refresh_from_db()
    assert request.status == "provisioned"


@pytest.mark.parametrize(
    ("email", "said"),
    [("new.person@partner.example", "was invited to"), (None, "was added to")],
)
def test_an_approval_whose_answer_was_lost_says_invited_or_added(client, vera, team, email, said):
    from sandbox.faults import inject_fault
    from sandbox.models import WorkspaceUser

    email = email or WorkspaceUser.objects.exclude(memberships__group=team).first().email
    request = AccessRequest.objects.create(
        group_id=team.id, group_name=team.name, email=email, requester=vera,
        requester_username="vera", justification="j",
    )  # fmt: skip
    as_user(client, help_desk(username="hana", email="hana@example.com"))
    inject_fault("add_users_to_user_group", "applied-500")

    response = client.post(reverse("groups:request-decide", args=[request.pk, "approve"]), follow=True)

    assert f"Approved: {email} {said} {team.name}" in html(response)


def test_an_approval_outside_the_allowed_domains_is_group_admins_refusal(client, vera, team, settings):
    request = AccessRequest.objects.create(
        group_id=team.id, group_name=team.name, email="vera@example.com", requester=vera,
        requester_username="vera", justification="j",
    )  # fmt: skip
    as_user(client, help_desk(username="hana", email="hana@example.com"))
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]  # the policy changed after filing

    page = html(client.post(reverse("groups:request-decide", args=[request.pk, "approve"]), follow=True))

    assert "Group Admin&#x27;s rules do not allow adding vera@example.com: " in page
    assert "Refused by Group Admin's rules (nothing was sent to Segment): " in page
    assert "Segment did not add" not in page


def test_self_approval_is_refused_with_a_message(client, team):
    hana = help_desk(username="hana", email="hana@example.com")
    request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="hana@example.com",
        requester=hana,
        requester_username="hana",
        justification="j",
    )
    as_user(client, hana)

    response = client.post(reverse("groups:request-decide", args=[request.pk, "approve"]), follow=True)

    assert "You cannot approve a change you asked for" in html(response)
    assert AuditEntry.objects.get(action="request.approve").status == "refused"


def test_denial_without_reason_is_refused_by_the_field(client, team):
    request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="x@example.com",
        requester_username="x",
        justification="j",
    )
    as_user(client, help_desk())

    refused = client.post(reverse("groups:request-decide", args=[request.pk, "deny"]), {"reason": " "})
    denied = client.post(
        reverse("groups:request-decide", args=[request.pk, "deny"]), {"reason": "Not needed"}, follow=True
    )

    assert refused.status_code == 422 and "This field is required." in html(refused)
    assert "Denied; the requester was told why." in html(denied)


def test_requester_cancels(client, vera, team):
    request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="vera@example.com",
        requester=vera,
        requester_username="vera",
        justification="j",
    )
    as_user(client, vera)

    response = client.post(reverse("groups:request-decide", args=[request.pk, "cancel"]), follow=True)

    assert "Your request was cancelled." in html(response)
    assert client.post(reverse("groups:request-decide", args=[request.pk, "approve"])).status_code == 403


# -- reviews -----------------------------------------------------------------------------------------


def start_review(client, team):
    response = client.post(reverse("groups:review-start", args=[team.id]))
    return Review.objects.get(), response


def test_only_administrators_start_reviews(client, team):
    as_user(client, help_desk())
    assert client.post(reverse("groups:review-start", args=[team.id])).status_code == 403
    assert "Start a review" not in html(client.get(reverse("groups:detail", args=[team.id])))


def test_review_decisions_with_htmx_and_completion(client, team):
    as_user(client, administrator())
    review, response = start_review(client, team)
    assert response["Location"] == reverse("groups:review", args=[review.pk])
    page = html(client.get(response["Location"]))
    total = review.items.count()
    assert f"0 of {total} decided" in page
    first = review.items.first()

    row = client.post(
        reverse("groups:review-decide", args=[review.pk, first.pk]),
        {"decision": "remove"},
        headers={"HX-Request": "true"},
    )

    assert html(row).strip().startswith(f'<tr id="item-{first.pk}"')
    assert 'value="remove" aria-pressed="true"' in html(row)
    assert "review-progress" in row["HX-Trigger"]
    progress = client.get(
        response["Location"], headers={"HX-Request": "true", "HX-Target": "review-progress"}
    )
    assert f"1 of {total} decided" in html(progress)

    kept = client.post(
        reverse("groups:review-keep-page", args=[review.pk]),
        {"item": [i.pk for i in review.items.exclude(pk=first.pk)]},
        headers={"HX-Request": "true", "HX-Target": "review-table"},
    )
    assert html(kept).strip().startswith('<section id="review-table"')
    summary = client.get(reverse("groups:review-complete", args=[review.pk]))
    assert first.email in html(summary) and "Complete and remove 1" in html(summary)
    key = re.search(r'name="submission_key" value="(\w+)"', html(summary)).group(1)

    done = client.post(
        reverse("groups:review-complete", args=[review.pk]), {"submission_key": key}, follow=True
    )

    assert "Review completed; 1 removed." in html(done)
    assert (
        not team.memberships.filter(user__email=first.email).exists()
        and not team.invites.filter(email=first.email).exists()
    )
    assert 'name="decision"' not in html(done)  # read-only now


def test_only_undecided_filter(client, team):
    as_user(client, administrator())
    review, _ = start_review(client, team)
    first = review.items.first()
    client.post(reverse("groups:review-decide", args=[review.pk, first.pk]), {"decision": "keep"})

    page = html(client.get(reverse("groups:review", args=[review.pk]), {"undecided": "1"}))

    assert f'id="item-{first.pk}"' not in page


def test_completing_too_early_says_what_is_left(client, team):
    as_user(client, administrator())
    review, _ = start_review(client, team)

    response = client.post(reverse("groups:review-complete", args=[review.pk]), {"submission_key": "abc"})

    assert response.status_code == 422 and "still undecided" in html(response)


def test_review_csv_and_lists(client, team):
    as_user(client, administrator())
    review, _ = start_review(client, team)

    csv_response = client.get(reverse("groups:review-export", args=[review.pk]))
    listing = html(client.get(reverse("groups:reviews"), {"group": team.id}))

    body = b"".join(csv_response.streaming_content).decode()
    assert body.startswith("email,name,kind,decision") and len(body.splitlines()) == review.items.count() + 1
    assert team.name in listing and "Open" in listing


def test_viewer_reads_reviews_but_cannot_decide(client, team):
    as_user(client, administrator())
    review, _ = start_review(client, team)
    as_user(client, viewer())

    page = html(client.get(reverse("groups:review", args=[review.pk])))

    assert 'name="decision"' not in page
    assert (
        client.post(
            reverse("groups:review-decide", args=[review.pk, review.items.first().pk]), {"decision": "keep"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("next_url", ["https://evil.example/phish", "//evil.example", ""])
def test_decisions_without_javascript_never_redirect_off_site(client, team, next_url):
    as_user(client, administrator())
    review, _ = start_review(client, team)
    item = review.items.first()

    response = client.post(
        reverse("groups:review-decide", args=[review.pk, item.pk]), {"decision": "keep", "next": next_url}
    )

    assert response["Location"] == reverse("groups:review", args=[review.pk])


def test_decisions_without_javascript_return_to_the_page_they_came_from(client, team):
    as_user(client, administrator())
    review, _ = start_review(client, team)
    back = reverse("groups:review", args=[review.pk]) + "?undecided=1&page=1"

    response = client.post(reverse("groups:review-keep-page", args=[review.pk]), {"item": [], "next": back})

    assert response["Location"] == back


def test_an_approver_sees_no_approve_button_on_their_own_request(client, team):
    hana = help_desk(username="hana", email="hana@example.com")
    own = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="hana@example.com",
        requester=hana,
        requester_username="hana",
        justification="j",
    )
    as_user(client, hana)

    page = html(client.get(reverse("groups:request", args=[own.pk])))

    assert "Approve and add" not in page
    assert "another person must decide it" in page


def test_help_desk_is_told_up_front_that_a_privileged_group_needs_an_administrator(client, demo_workspace):
    from groups_app.services.mirror.sync import sync_workspace
    from sandbox.models import GroupPermission, Role

    group = next(g for g in demo_workspace.values() if g.name != "All Employees" and g.memberships.exists())
    owner = Role.objects.get(name="Workspace Owner")
    GroupPermission.objects.create(group=group, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")
    request = AccessRequest.objects.create(
        group_id=group.id,
        group_name=group.name,
        email="x@example.com",
        requester_username="v",
        justification="j",
    )
    as_user(client, help_desk(username="hana", email="hana@example.com"))

    detail = html(client.get(reverse("groups:detail", args=[group.id])))
    request_page = html(client.get(reverse("groups:request", args=[request.pk])))

    assert "only Administrators change its members" in detail
    assert "Remove selected" not in detail and 'name="emails"' not in detail
    assert "Approve and add" not in request_page
    assert f"{escape(group.name)} is a privileged group" in request_page


def test_a_refused_removal_never_suggests_requesting_access(client, demo_workspace):
    from groups_app.services.mirror.sync import sync_workspace
    from sandbox.models import GroupPermission, Role

    group = next(g for g in demo_workspace.values() if g.name != "All Employees" and g.memberships.exists())
    owner = Role.objects.get(name="Workspace Owner")
    GroupPermission.objects.create(group=group, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")
    member = group.memberships.first().user.email
    as_user(client, help_desk(username="hana", email="hana@example.com"))

    removal = client.post(
        reverse("groups:members-remove", args=[group.id]), {"emails": [member], "submission_key": "r1"}
    )
    addition = client.post(
        reverse("groups:members-add", args=[group.id]), {"emails": "new@example.com", "submission_key": "a1"}
    )

    assert "privileged group" in html(removal) and "Request access instead" not in html(removal)
    assert "Request access instead" in html(addition)


def test_the_queue_approves_and_denies_ticked_requests_each_on_its_own(client, team):
    hana = help_desk(username="hana", email="hana@example.com")
    others = [
        AccessRequest.objects.create(
            group_id=team.id,
            group_name=team.name,
            email=f"p{n}@example.com",
            requester_username="v",
            justification="j",
        )
        for n in range(2)
    ]
    own = AccessRequest.objects.create(
        group_id=team.id, group_name=team.name, email="hana@example.com", requester=hana,
        requester_username="hana", justification="j",
    )  # fmt: skip
    as_user(client, hana)
    queue = html(client.get(reverse("groups:requests")))
    assert 'form="bulk-decision"' in queue and "Approve selected" in queue

    response = client.post(
        reverse("groups:requests-bulk"),
        {"ids": [r.pk for r in [*others, own]], "decision": "approve"},
        follow=True,
    )

    page = html(response)
    assert "Approved 2:" in page and f"#{own.pk}:" in page
    assert {AccessRequest.objects.get(pk=r.pk).status for r in others} == {"provisioned"}
    assert AccessRequest.objects.get(pk=own.pk).status == "pending"
    approvals = AuditEntry.objects.filter(action="request.approve")
    assert (
        approvals.filter(status="succeeded").count() == 2 and approvals.filter(status="refused").count() == 1
    )


def test_denying_ticked_requests_needs_a_reason(client, team):
    hana = help_desk(username="hana", email="hana@example.com")
    waiting = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="p@example.com",
        requester_username="v",
        justification="j",
    )
    as_user(client, hana)

    without = html(
        client.post(reverse("groups:requests-bulk"), {"ids": [waiting.pk], "decision": "deny"}, follow=True)
    )
    assert "Give a reason for denying them." in without
    assert AccessRequest.objects.get(pk=waiting.pk).status == "pending"
    assert not AuditEntry.objects.filter(action="request.deny").exists()

    client.post(
        reverse("groups:requests-bulk"), {"ids": [waiting.pk], "decision": "deny", "reason": "Use Readers"}
    )
    assert AccessRequest.objects.get(pk=waiting.pk).status == "denied"
    for bad in ({"ids": ["x"], "decision": "approve"}, {"ids": [], "decision": "approve"}):
        page = html(client.post(reverse("groups:requests-bulk"), bad, follow=True))
        assert "Approved 1" not in page and (
            "Choose requests from the queue." in page or "Tick at least one" in page
        )
