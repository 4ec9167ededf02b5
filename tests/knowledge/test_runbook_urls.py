"""A runbook's web address from the index's URL template or its own front matter."""

from __future__ import annotations

import pytest

from knowledge.runbook_urls import UrlTemplateError, check_template, runbook_url


def test_template_fields_and_front_matter() -> None:
    gh = "https://github.com/acme/runbooks/blob/main/{path}"
    assert runbook_url("db/Disk Full.md", {}, gh) == (
        "https://github.com/acme/runbooks/blob/main/db/Disk%20Full.md")
    site = "https://runbooks.example.com/runbooks/{dir}/{stem_lower}"
    assert runbook_url("kubernetes/KubePodCrashLooping.md", {}, site) == (
        "https://runbooks.example.com/runbooks/kubernetes/kubepodcrashlooping")
    assert runbook_url("top.md", {}, "https://w/{path_noext}") == "https://w/top"
    own = {"url": "https://wiki.example.com/p/1"}
    assert runbook_url("a.md", own, gh) == "https://wiki.example.com/p/1"
    assert runbook_url("a.md", {"url": "javascript:alert(1)"}, "") == ""
    assert runbook_url("a.md", {}, "") == ""


@pytest.mark.parametrize(("template", "words"), [
    ("ftp://x/{path}", "must start with http(s)://"),
    ("https://x/{name}", "unknown field(s) ['name']"),
    ("https://x/{path", "https://x/{path"),
])
def test_a_template_that_cannot_make_an_address_is_refused(template: str, words: str) -> None:
    with pytest.raises(UrlTemplateError, match=None) as caught:
        check_template(template)
    assert words in str(caught.value)
    assert check_template("  ") == ""
