"""Every page passes axe-core with no serious or critical violation, and reflows at 683 px (a
laptop at 200 % zoom) and down to 390 px wide with no sideways scroll of the page and no form
field over another. Screenshots of the main pages at each width."""

from datetime import timedelta

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from django.urls import reverse
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry, Job, Review
from groups_app.services.jobs import person_change_start
from groups_app.services.people import person_keys
from groups_app.services.reviews import campaign_open_reviews, campaign_start, review_start
from sandbox.models import UserGroup
from tests.browser.conftest import screenshot, sign_in

WIDTHS = {"desktop": (1366, 900), "zoomed": (683, 768), "phone": (390, 844)}
NARROW = ("zoomed", "phone")


def axe_problems(page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now."""
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']} {node.get('failureSummary', '')[:200]}"
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
        for node in violation["nodes"]
    ]


def sideways_scroll(page) -> int:
    """How far the page itself scrolls sideways (0 when its content reflows)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


OVERLAPS = """
(() => {
  // Every visible control of a form: none may reach past its form, nor cover another's box.
  // Controls in a closed <details>, or scrolled out of a box that scrolls, are not shown.
  const scrolledAway = (el) => {
    const r = el.getBoundingClientRect();
    for (let box = el.parentElement; box; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const b = box.getBoundingClientRect();
      if (r.bottom <= b.top || r.top >= b.bottom || r.right <= b.left || r.left >= b.right) return true;
    }
    return false;
  };
  const problems = [];
  for (const form of document.querySelectorAll("main form")) {
    const box = form.getBoundingClientRect();
    const controls = [...form.querySelectorAll("input:not([type=hidden]), select, textarea, button, .button")]
      .filter((el) => el.checkVisibility({ checkVisibilityCSS: true }) && !el.closest("table") && !scrolledAway(el));
    const rects = controls.map((el) => [el, el.getBoundingClientRect()]);
    for (const [el, r] of rects) {
      if (r.right > box.right + 1 || r.left < box.left - 1) problems.push(`${el.name || el.textContent.trim()} sticks out of its form`);
    }
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const [a, ra] = rects[i], [b, rb] = rects[j];
        if (ra.width && rb.width && ra.left < rb.right - 1 && rb.left < ra.right - 1 && ra.top < rb.bottom - 1 && rb.top < ra.bottom - 1) {
          problems.push(`${a.name || a.textContent.trim()} overlaps ${b.name || b.textContent.trim()}`);
        }
      }
    }
  }
  return problems;
})()
"""


def overlapping_controls(page) -> list[str]:
    """Form controls that stick out of their form or lie over one another."""
    return page.evaluate(OVERLAPS)


@pytest.fixture
def places(workspace, admin_account, transactional_db):
    """One of every kind of page, with data in it."""
    from tests.factories import viewer

    group = workspace["All Employees"]
    # The longest name a group may have (100 characters), with a word too long for a phone's width.
    name = "Data-Engineering-Warehouse-Administrators-Europe-Middle-East-Africa and a long tail of words"
    long_name = UserGroup.objects.create(name=(name + " x" * 10)[:100])
    requester = viewer(username="vera", email="vera@partner.example")
    access_request = AccessRequest.objects.create(
        group_id=group.id, group_name=group.name, email=requester.email, requester=requester,
        requester_username="vera", justification="Quarterly reporting",
    )  # fmt: skip
    review = review_start(actor=admin_account, group_id=long_name.id).review
    entry = AuditEntry.objects.filter(action="review.start").first()
    person = group.memberships.order_by("user__email").values_list("user__email", flat=True).first()
    observed = AuditEntry.objects.create(
        actor_username="outside Group Admin", action="observed", group_id=group.id, group_name=group.name,
        summary=f"Observed outside Group Admin in {group.name}: removed {person}", details={"removed": [person]},
        status="succeeded",
    )  # fmt: skip
    campaign = campaign_start(
        actor=admin_account, name="Q1", scope="chosen", group_ids=[long_name.id],
        due_date=timezone.localdate() + timedelta(days=7),
    )  # fmt: skip
    campaign_open_reviews(campaign_id=campaign.pk)
    job = person_change_start(  # queued: its page polls, and offers Cancel
        actor=admin_account, kind=Job.Kind.PERSON_REMOVE, email=person, group_ids=[group.id, long_name.id]
    ).job
    return {
        "group-list": "/",
        "group-detail": f"/groups/{group.id}/",
        "long-name": f"/groups/{long_name.id}/",
        "members-add": f"/groups/{group.id}/members/add/",
        "members-replace": f"/groups/{long_name.id}/members/replace/",
        "members-remove": f"/groups/{group.id}/members/remove/?person="
        + next(iter(person_keys([group.invites.first().email]).values())),
        "permissions-add": f"/groups/{group.id}/permissions/add/",
        "permissions-edit": f"/groups/{group.id}/permissions/edit/",
        "rename": f"/groups/{group.id}/rename/",
        "delete": f"/groups/{long_name.id}/delete/",
        "create": "/groups/new/",
        "audit-log": "/audit/",
        "audit-entry": f"/audit/{entry.pk}/",
        "sign-in-failures": "/audit/sign-ins/",
        "requests": "/requests/",
        "request-new": "/requests/new/",
        "request": f"/requests/{access_request.pk}/",
        "reviews": "/reviews/",
        "review": f"/reviews/{review.pk}/",
        "review-complete": f"/reviews/{review.pk}/complete/",
        "people": "/people/",
        "person": reverse("groups:person", args=[person_keys([person])[person]]),
        "member-search": f"/groups/{group.id}/members/search/",
        "owners": f"/groups/{group.id}/owners/",
        "owned": "/owned/",
        "catalogue": "/catalogue/",
        "catalogue-about": f"/groups/{group.id}/about/",
        "expiring": "/expiring/",
        "undo": f"/audit/{observed.pk}/undo/",
        "campaigns": "/reviews/campaigns/",
        "campaign-new": "/reviews/campaigns/new/",
        "campaign": f"/reviews/campaigns/{campaign.pk}/",
        "campaign-print": f"/reviews/campaigns/{campaign.pk}/print/",
        "inbox": "/inbox/",
        "job": f"/jobs/{job.pk}/",
        "jobs": "/jobs/",
        "not-found": "/no/such/page/",
    }


MAIN_PAGES = {"group-list", "group-detail", "audit-log", "requests", "review", "members-replace", "person"}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_passes_axe_and_reflows(browser, live_server, places, width):
    context = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    page = context.new_page()
    sign_in(page, live_server, "ada")
    problems = {}
    for name, path in places.items():
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        found = axe_problems(page)
        if width in NARROW:
            if (scroll := sideways_scroll(page)) > 0:
                found.append(f"the page scrolls sideways by {scroll} px")
            found.extend(overlapping_controls(page))
        if found:
            problems[name] = found
        if name in MAIN_PAGES:
            screenshot(page, f"{name}-{WIDTHS[width][0]}")
    context.close()

    assert problems == {}, "\n".join(f"{name}: {found}" for name, found in problems.items())


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sign_in_page_passes_axe_and_reflows(browser, live_server, transactional_db, width):
    context = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    page = context.new_page()
    page.goto(live_server.url + "/accounts/login/")

    assert axe_problems(page) == []
    assert sideways_scroll(page) == 0
    assert overlapping_controls(page) == []
    screenshot(page, f"sign-in-{WIDTHS[width][0]}")
    context.close()


def test_a_long_group_name_wraps_inside_its_card(page, live_server, places):
    sign_in(page, live_server, "ada")
    page.goto(live_server.url + places["long-name"])

    overflow = page.evaluate(
        "(() => { const h = document.querySelector('#group-header h1');"
        " return h.scrollWidth - h.clientWidth; })()"
    )

    assert overflow <= 0
    assert Review.objects.exists()
