"""The API's documentation page renders from Group Admin's own files, with nothing from outside."""

from groups_app.models import WebhookDelivery
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_accessibility import WIDTHS, axe_problems, sideways_scroll


def test_api_docs_render_offline_under_the_content_security_policy(page, live_server):
    outside, refused_by_csp = [], []

    def only_local(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on(
        "console",
        lambda message: (
            refused_by_csp.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    page.goto(live_server.url + "/api/v1/docs")

    page.get_by_text("Group Admin API").first.wait_for()
    page.locator(".opblock").first.wait_for()
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/groups/{group_id}/members" in [text.replace("\u200b", "") for text in operations]
    assert page.locator(".opblock").count() == 12
    assert outside == []
    assert [text for text in refused_by_csp if "script" in text] == []
    screenshot(page, "api-docs")


def test_create_an_api_token_on_its_page_and_see_it_once(page, live_server, viewer_account):
    sign_in(page, live_server)
    page.get_by_role("link", name="API tokens").click()

    page.get_by_label("Name").fill("weekly report")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create token").click()

    secret = page.locator(".token-secret").inner_text()
    assert secret.startswith("gat_")
    screenshot(page, "api-tokens")
    page.get_by_role("button", name="Revoke “weekly report”").click()
    assert page.get_by_text("Revoked the token “weekly report”.").is_visible()
    assert page.locator(".token-secret").count() == 0


def test_the_tokens_and_deliveries_pages_pass_axe_and_reflow(page, live_server, admin_account):
    WebhookDelivery.objects.create(
        event="access_request.filed", event_id="1", receiver="https://hooks.example.com/group-admin/events",
        url_digest="x", payload={}, status="retrying", attempts=2, last_error="The receiver answered HTTP 500",
    )  # fmt: skip
    sign_in(page, live_server, username="ada")
    page.goto(live_server.url + "/account/api-tokens/")
    page.get_by_label("Name").fill("nightly export of every group's members")
    page.get_by_role("button", name="Create token").click()

    for url in ("/account/api-tokens/", "/audit/webhooks/"):
        for width, height in WIDTHS.values():
            page.set_viewport_size({"width": width, "height": height})
            page.goto(live_server.url + url)
            assert axe_problems(page) == [], url
            assert sideways_scroll(page) == 0, (url, width)
