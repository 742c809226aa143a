import pytest

from groups_app.rules.identity import InvalidIdentity, canonical_identity, identity_problem, same_identity


@pytest.mark.parametrize(
    "spelling",
    [
        "ada@example.com",
        "Ada@Example.COM",
        "ada+owner@example.com",
        "ADA+x+y@example.com",
        "\uff41\uff44\uff41@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # full-width
        " ada@example.com ",
    ],
)
def test_spellings_of_one_mailbox_are_one_identity(spelling):
    assert canonical_identity(spelling) == "ada@example.com"


def test_an_internationalised_domain_is_compared_as_its_a_label():
    assert canonical_identity("ada@bücher.example") == canonical_identity("ada@xn--bcher-kva.example")
    assert canonical_identity("ada@BÜCHER.example") == "ada@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("ada@exam\u200bple.com", "hidden character"),  # zero-width space
        ("ada@exam\u00adple.com", "hidden character"),  # soft hyphen
        ("ada@example.com\u202e", "hidden character"),  # bidi override
        ("ad\u0430@example.com", "mixes alphabets"),  # a Cyrillic letter among Latin ones
        ("ada@ex\u0430mple.com", "mixes alphabets"),
        ("ada@", "not an email address"),
    ],
)
def test_addresses_that_hide_who_they_are_have_no_identity(address, reason):
    with pytest.raises(InvalidIdentity, match=reason):
        canonical_identity(address)
    assert reason in identity_problem(address)


def test_a_dotless_i_is_another_identity_not_a_variant():
    assert not same_identity("adm\u0131n1@example.com", "admin1@example.com")


def test_scripts_written_together_may_share_a_label():
    assert identity_problem("日本語ひらがな@example.jp") == ""


def test_sub_address_separators_come_from_the_settings(settings):
    settings.EMAIL_SUBADDRESS_SEPARATORS = "+-"
    assert canonical_identity("ada-team@example.com") == "ada@example.com"
    settings.EMAIL_SUBADDRESS_SEPARATORS = ""
    assert canonical_identity("ada+team@example.com") == "ada+team@example.com"


def test_an_address_with_no_identity_matches_nobody():
    assert not same_identity("ada@exam\u200bple.com", "ada@exam\u200bple.com")
