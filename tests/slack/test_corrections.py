"""Label corrections become training labels: only a label the menu offered for that answer and
field is stored; anything else (a forged payload, a label removed since, a huge or garbled
string) is refused with a note. A menu of more than 100 labels (Slack's limit for a static
menu) is an external select whose options follow what the person types."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack.ids import ActionId
from bot.store.db import session_scope
from bot.store.models import AuditEntry, Feedback, Incident, LabeledExample
from tests.conftest import copy_data_dir
from tests.slack.conftest import SlackHarness, make_settings
from tests.slack.helpers import (
    action_values,
    correction_payload,
    event_body,
    interaction_body,
    load_payload,
    mention,
    post,
)

SERVICES = [f"service-{i:03d}" for i in range(150)]  # more labels than a static menu holds
TOO_LONG = "a-category-whose-name-is-too-long-for-an-option-value-" + "x" * 100


def ask(h: SlackHarness, text: str) -> tuple[int, Any]:
    """Mention the bot in COPS; (the answer id, the reply the fake received)."""
    payload = mention("COPS", text)
    assert post(h.client, event_body(payload)).status_code == 200
    (reply,) = h.fake.wait_for(
        lambda c: c.method == "chat.postMessage"
        and c.args.get("thread_ts") == payload["event"]["ts"]
    )
    return int(action_values(reply)[ActionId.HELPFUL]), reply


def correction_menu(reply: Any) -> dict[str, Any]:
    for block in reply.args["blocks"]:
        for element in block.get("elements") or ():
            if element.get("action_id") == ActionId.CORRECT_LABEL:
                return {**element, "block_id": block["block_id"]}
    raise AssertionError("the answer has no correction menu")


def correct(h: SlackHarness, answer_id: int, value: str, user: str, **action: Any) -> None:
    """Send the correction menu's block_actions with the option value ``value``."""
    payload = correction_payload(answer_id, value, user, h.fake.response_url("correct"))
    payload["actions"][0].update(action)
    assert post(h.client, interaction_body(payload)).status_code == 200


def notes(h: SlackHarness, user: str, text: str, count: int = 1) -> list[Any]:
    return h.fake.wait_for(
        lambda c: c.method == "chat.postEphemeral"
        and c.args.get("user") == user
        and text in c.args.get("text", ""),
        count=count,
    )


def stored_for(h: SlackHarness, answer_id: int) -> tuple[list, list, list]:
    """The feedback rows, training labels and feedback audit entries of one answer."""
    with session_scope(h.services.sessions) as session:
        feedback = session.query(Feedback).filter_by(answer_id=answer_id).all()
        ids = [f.id for f in feedback]
        examples = [
            (e.field, e.label)
            for e in session.query(LabeledExample).all()
            if e.feedback_id in ids
        ]
        audit = session.query(AuditEntry).filter_by(
            subject=f"answer:{answer_id}", action="feedback"
        ).all()
        return [(f.kind, f.field, f.value) for f in feedback], examples, [a.action for a in audit]


def suggest(h: SlackHarness, name: str, answer_id: int, query: str) -> dict[str, Any]:
    """An options request (block_suggestion) as Slack sends it while the person types."""
    payload = load_payload(name, answer_id=answer_id, query=query)
    response = post(h.client, interaction_body(payload))
    assert response.status_code == 200, response.text
    return response.json()


def group_labels(answer: dict[str, Any]) -> dict[str, list[str]]:
    return {g["label"]["text"]: [o["text"]["text"] for o in g["options"]]
            for g in answer.get("option_groups") or ()}


# --- refused corrections -------------------------------------------------------------------------


def test_a_correction_the_menu_did_not_offer_is_refused_and_nothing_is_stored(harness):
    answer_id, reply = ask(harness, "disk full on /var/lib/postgresql on db-07, WAL volume 100%")
    menu = correction_menu(reply)
    offered = {o["value"] for g in menu["option_groups"] for o in g["options"]}
    assert f"{answer_id}|category|database" in offered
    user = "U" + uuid.uuid4().hex[:8].upper()
    forged = [
        f"{answer_id}|category|not-a-category",  # hand-crafted
        f"{answer_id}|category|" + "x" * 5000,  # huge
        f"{answer_id}|category|data\x00base\x1b[31m",  # control characters
        f"{answer_id}|category|",  # empty
        f"{answer_id}|category|Database",  # near miss
        f"{answer_id}|root_cause|database",  # a field that is not a target
        f"{answer_id}|nonsense",  # no label at all
    ]
    for value in forged:
        correct(harness, answer_id, value, user)
    refused = notes(harness, user, "Not recorded", count=len(forged))
    texts = [c.args["text"] for c in refused]
    assert any("“not-a-category” is not one of the category labels" in t for t in texts)
    assert all(len(t) < 400 and "\x00" not in t and "\x1b" not in t for t in texts)
    assert stored_for(harness, answer_id) == ([], [], [])
    assert not [c for c in harness.fake.calls
                if c.args.get("user") == user and "Thanks, recorded" in c.args.get("text", "")]

    correct(harness, answer_id, f"{answer_id}|category|database", user)  # offered: stored
    notes(harness, user, "should be *database*")
    assert stored_for(harness, answer_id) == (
        [("correction", "category", "database")],
        [("category", "database")],
        ["feedback"],
    )


def test_the_root_cause_form_refuses_a_category_it_did_not_offer(harness):
    answer_id, _ = ask(harness, "glorp-daemon on node-12 leaks file handles until it stalls")
    cause = f"glorp handle leak {uuid.uuid4().hex[:8]}"
    submission = load_payload(
        "view_submission_root_cause.json",
        answer_id=answer_id,
        thread_ts="1715000000.000100",
        root_cause=cause,
        fix="restart glorp-daemon nightly until 2.4 ships",
    )
    category = submission["view"]["state"]["values"]["rc_category"]["root_cause_category"]
    category["selected_option"] = {
        "text": {"type": "plain_text", "text": "junk"},
        "value": "junk\x07" + "y" * 3000,
    }
    response = post(harness.client, interaction_body(submission))
    assert response.status_code == 200
    assert response.json()["response_action"] == "errors"
    assert "not offered" in response.json()["errors"]["rc_category"]
    with session_scope(harness.services.sessions) as session:
        assert not session.query(Incident).filter_by(root_cause=cause).all()

    category["selected_option"] = {"text": {"type": "plain_text", "text": "storage"},
                                   "value": "storage"}
    response = post(harness.client, interaction_body(submission))
    assert response.status_code == 200 and not response.content.strip()  # accepted
    notes(harness, "UALICE", "saved as incident `slack:COPS:1715000000.000100`")
    with session_scope(harness.services.sessions) as session:
        (incident,) = session.query(Incident).filter_by(root_cause=cause).all()
        assert incident.category == "storage"


# --- more than 100 labels: an external select ----------------------------------------------------


@pytest.fixture(scope="module")
def wide(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack: Any):
    """A bot whose own taxonomy (TRIAGEBOT_TAXONOMY_FILE) declares 150 more categories than
    its trained model knows, and one too long for an option value."""
    from bot.app import SAMPLES_DIR, build_services

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("wide") / "data")
    taxonomy = yaml.safe_load((SAMPLES_DIR / "taxonomy.yaml").read_text(encoding="utf-8"))
    taxonomy["category"].update({s: f"Problems of {s}." for s in [*SERVICES, TOO_LONG]})
    path = data_dir / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(taxonomy), encoding="utf-8")
    services = build_services(make_settings(data_dir, fake_slack.api_url, taxonomy_file=path))
    harness = SlackHarness(services, fake_slack)
    yield harness, path
    harness.close()
    services.close()


def test_a_long_correction_menu_searches_every_label_as_one_types(wide):
    h, _ = wide
    answer_id, reply = ask(h, "checkout-api pods restart every few minutes with exit code 137")
    menu = correction_menu(reply)
    assert menu["type"] == "external_select" and menu["min_query_length"] == 0
    assert menu["block_id"] == f"triage_feedback:{answer_id}"

    everything = suggest(h, "block_suggestion_correct_label.json", answer_id, "")
    assert sum(len(g["options"]) for g in everything["option_groups"]) == 100  # Slack's cap
    found = suggest(h, "block_suggestion_correct_label.json", answer_id, "Service-14")
    assert group_labels(found) == {"Category": [f"service-14{i}" for i in range(10)]}
    values = [o["value"] for g in found["option_groups"] for o in g["options"]]
    assert values[2] == f"{answer_id}|category|service-142"
    by_field = group_labels(suggest(h, "block_suggestion_correct_label.json", answer_id, "sever"))
    assert set(by_field["Severity"]) >= {"critical", "warning"}  # the field's name matches
    assert not group_labels(suggest(h, "block_suggestion_correct_label.json", answer_id, "long"))

    user = "U" + uuid.uuid4().hex[:8].upper()
    correct(h, answer_id, values[2], user, type="external_select", block_id=menu["block_id"])
    notes(h, user, "should be *service-142*")  # beyond the first 100: reachable and stored
    correct(h, answer_id, f"{answer_id}|category|{TOO_LONG}", user)  # never offered
    notes(h, user, "Not recorded")
    assert stored_for(h, answer_id)[1] == [("category", "service-142")]


def test_a_label_removed_since_the_answer_was_posted_is_refused(wide):
    h, path = wide
    answer_id, _ = ask(h, "orders-api returns 502 for a minute after each deploy")
    offered = suggest(h, "block_suggestion_correct_label.json", answer_id, "service-149")
    assert group_labels(offered) == {"Category": ["service-149"]}  # offered when posted
    original = path.read_text(encoding="utf-8")
    taxonomy = yaml.safe_load(original)
    del taxonomy["category"]["service-149"]
    try:
        path.write_text(yaml.safe_dump(taxonomy), encoding="utf-8")
        stat = path.stat()  # a new mtime even on a coarse clock: the labels are read again
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        user = "U" + uuid.uuid4().hex[:8].upper()
        correct(h, answer_id, f"{answer_id}|category|service-149", user)
        notes(h, user, "“service-149” is not one of the category labels")
        assert stored_for(h, answer_id) == ([], [], [])
    finally:
        path.write_text(original, encoding="utf-8")


def test_the_root_cause_form_searches_a_long_category_list(wide):
    h, _ = wide
    answer_id, _ = ask(h, "zanzibar-queue consumers stop acking after a broker failover")
    payload = load_payload(
        "block_actions_record_root_cause.json",
        answer_id=answer_id,
        response_url=h.fake.response_url("rc"),
    )
    assert post(h.client, interaction_body(payload)).status_code == 200
    (opened,) = h.fake.wait_for(
        lambda c: c.method == "views.open"
        and json.loads(c.args["view"]["private_metadata"])["answer_id"] == answer_id
    )
    (element,) = [b["element"] for b in opened.args["view"]["blocks"]
                  if b["block_id"] == "rc_category"]
    assert element["type"] == "external_select" and element["min_query_length"] == 0
    found = suggest(h, "block_suggestion_root_cause_category.json", answer_id, "service-02")
    assert [o["value"] for o in found["options"]] == [f"service-02{i}" for i in range(10)]
    assert not suggest(h, "block_suggestion_root_cause_category.json", answer_id, "too-long")[
        "options"
    ]
