"""Rolling a model back from the App Home as an admin does it: versions trained, the newest
promoted, "Roll back" pressed (signed request to the real Bolt app). The active version
changes in the database and in the running classifier, the next answer comes from the old
version, the App Home shows the new state, the audit trail says who; a non-admin, a target
with nothing earlier and a double click change nothing more. On a private copy of the
samples, each test on a target of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.slack.ids import ActionId
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import TriageAnswer
from tests.slack.conftest import ADMIN, SlackHarness, private_harness
from tests.slack.helpers import (
    action_values,
    event_body,
    interaction_body,
    load_payload,
    mention,
    new_event_id,
    post,
)


@pytest.fixture(scope="module")
def home(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack: Any):
    with private_harness(sample_data_dir, tmp_path_factory, fake_slack, "rollback") as harness:
        yield harness


def train_versions(h: SlackHarness, target: str, n: int) -> list[str]:
    """The active version of ``target`` and ``n`` newer ones, each promoted in turn."""
    classifiers = h.services.classifiers
    versions = [classifiers.active_versions()[target]]
    for _ in range(n):
        outcome = classifiers.train(target, actor="test", force=True)
        assert outcome.promoted, outcome.reason
        versions.append(outcome.version)
    assert active_in_db(h, target) == versions[-1]
    return versions


def active_in_db(h: SlackHarness, target: str) -> str:
    with session_scope(h.services.sessions) as session:
        return repo.get_active_model(session=session, target=target).version


def home_button(h: SlackHarness, user: str, target: str) -> dict[str, Any]:
    """The "Roll back" button of ``target`` on ``user``'s App Home as last published."""
    view = h.fake.calls_of("views.publish")
    (last,) = [c for c in view if c.args["user_id"] == user][-1:]
    for block in last.args["view"]["blocks"]:
        accessory = block.get("accessory") or {}
        if (accessory.get("action_id") == ActionId.HOME_ROLLBACK
                and f"*{target}*" in block["text"]["text"]):
            return accessory
    raise AssertionError(f"no Roll back button for {target} on {user}'s App Home")


def open_home(h: SlackHarness, user: str) -> None:
    """``user`` opens the App Home tab; returns once it was published."""
    before = len([c for c in h.fake.calls_of("views.publish") if c.args["user_id"] == user])
    payload = load_payload("app_home_opened.json", user=user)
    payload["event_id"] = new_event_id()
    assert post(h.client, event_body(payload)).status_code == 200
    h.fake.wait_for(lambda c: c.method == "views.publish" and c.args["user_id"] == user,
                    count=before + 1)


def press_rollback(h: SlackHarness, user: str, value: str) -> set[int]:
    """Press "Roll back" as ``user``; returns the App Homes published before (the fake Slack
    API serves the whole session: other modules' notices are there too)."""
    before = {id(c) for c in h.fake.calls_of("views.publish")}
    payload = load_payload("block_actions_home_rollback.json", user=user, target="x")
    payload["actions"][0]["value"] = value
    assert post(h.client, interaction_body(payload)).status_code == 200
    return before


def done_notices(h: SlackHarness, user: str, target: str, count: int) -> list[str]:
    """The summaries of ``user``'s rollbacks of ``target`` once ``count`` have finished."""
    deadline = time.monotonic() + 60
    while True:
        with session_scope(h.services.sessions) as session:
            done = [a.detail["summary"] for a in repo.list_audit(session=session)
                    if a.actor == user and a.action == "home_rollback_done"
                    and a.subject == target]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.05)


def published_with(h: SlackHarness, user: str, text: str,
                   before: set[int] | frozenset[int] = frozenset()) -> dict[str, Any]:
    """The latest App Home published to ``user`` that says ``text``, not one of ``before``."""
    (call,) = h.fake.wait_for(lambda c: c.method == "views.publish" and id(c) not in before
                              and c.args["user_id"] == user
                              and text in json.dumps(c.args["view"], ensure_ascii=False))[-1:]
    return call.args["view"]


def model_line(view: dict[str, Any], target: str) -> str:
    (line,) = [b["text"]["text"] for b in view["blocks"]
               if b.get("type") == "section" and b["text"]["text"].startswith(f"• *{target}*")]
    return line


def test_an_admin_rolls_back_from_the_app_home(home) -> None:
    old, new = train_versions(home, "category", 1)
    open_home(home, ADMIN)
    assert f"`{new}`" in model_line(published_with(home, ADMIN, new), "category")
    button = home_button(home, ADMIN, "category")
    pressed = press_rollback(home, ADMIN, button["value"])

    (summary,) = done_notices(home, ADMIN, "category", 1)
    assert f"rolled back from `{new}` to `{old}` by <@{ADMIN}>" in summary
    # the database and the running classifier both serve the old version
    assert active_in_db(home, "category") == old
    assert home.services.classifiers.active_versions()["category"] == old
    with session_scope(home.services.sessions) as session:
        statuses = {v.version: v.status
                    for v in repo.list_model_versions(session=session, target="category")}
        rolled = [a for a in repo.list_audit(session=session) if a.action == "model_rolled_back"]
    assert statuses[old] == "active" and statuses[new] == "rolled_back"
    (entry,) = rolled
    assert (entry.actor, entry.subject, entry.detail["from"]) == (ADMIN, old, new)

    # the App Home is published again with the new state and what was done
    view = published_with(home, ADMIN, "rolled back from", pressed)
    assert f"`{old}`" in model_line(view, "category")
    assert f"models promote {new}" in json.dumps(view)  # the undo

    # the next answer is given by the old version
    payload = mention("COPS", "Disk full on /var/lib/postgresql on db-01, writes failing")
    assert post(home.client, event_body(payload)).status_code == 200
    (reply,) = home.fake.wait_for(lambda c: c.method == "chat.postMessage"
                                  and c.args.get("thread_ts") == payload["event"]["ts"])
    answer_id = int(action_values(reply)[ActionId.HELPFUL])
    with session_scope(home.services.sessions) as session:
        assert session.get(TriageAnswer, answer_id).model_versions["category"] == old


def test_a_non_admin_cannot_roll_back(home) -> None:
    _old, new = train_versions(home, "severity", 1)
    open_home(home, ADMIN)
    value = home_button(home, ADMIN, "severity")["value"]  # a real button, sent by someone else
    pressed = press_rollback(home, "UMALLORY", value)
    published_with(home, "UMALLORY", "Only triagebot admins", pressed)
    assert active_in_db(home, "severity") == new
    assert home.services.classifiers.active_versions()["severity"] == new
    with session_scope(home.services.sessions) as session:
        mine = [a.action for a in repo.list_audit(session=session) if a.actor == "UMALLORY"]
    assert mine == []


def test_nothing_earlier_to_go_back_to_says_so(home) -> None:
    (only,) = train_versions(home, "team", 0)  # the samples' first model, nothing before it
    open_home(home, ADMIN)
    pressed = press_rollback(home, ADMIN, home_button(home, ADMIN, "team")["value"])
    (summary,) = done_notices(home, ADMIN, "team", 1)
    assert "Roll back refused" in summary and "no earlier promoted version" in summary
    view = published_with(home, ADMIN, "no earlier promoted version", pressed)
    assert f"`{only}`" in model_line(view, "team")
    assert active_in_db(home, "team") == only


def test_a_double_click_rolls_back_once(home) -> None:
    """Both clicks carry the button of the App Home as it was: the second must not roll back
    the version the first one went back to (two steps back, to a model nobody chose)."""
    _first, previous, newest = train_versions(home, "priority", 2)
    open_home(home, ADMIN)
    value = home_button(home, ADMIN, "priority")["value"]
    press_rollback(home, ADMIN, value)
    press_rollback(home, ADMIN, value)

    summaries = done_notices(home, ADMIN, "priority", 2)
    assert len(summaries) == 2
    assert active_in_db(home, "priority") == previous
    assert home.services.classifiers.active_versions()["priority"] == previous
    with session_scope(home.services.sessions) as session:
        rolled = [a for a in repo.list_audit(session=session)
                  if a.action == "model_rolled_back" and a.detail["from"] == newest]
        others = [a for a in repo.list_audit(session=session)
                  if a.action == "model_rolled_back" and a.detail["from"] == previous]
    assert len(rolled) == 1 and others == []
    assert len([s for s in summaries if "rolled back from" in s]) == 1
    (other,) = [s for s in summaries if "rolled back from" not in s]
    assert "already" in other and f"`{previous}`" in other
