"""The whole learning loop through Slack: answers, corrections clicked, the scheduled retrain
job, a challenger promoted only because it measured better, the next answer using it; and a
second run where a worse challenger (trained on wrong corrections) is rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sklearn
from sqlalchemy import update

from bot.classification import in_holdout
from bot.jobs import run_job
from bot.slack.ids import ActionId
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import Incident, TriageAnswer
from tests.conftest import copy_data_dir
from tests.slack.conftest import ADMIN, SlackHarness, make_settings
from tests.slack.helpers import (
    action_values,
    event_body,
    interaction_body,
    load_payload,
    mention,
    post,
)

# Categories the first (weak) model never saw: users teach them through corrections. The
# correction menu offers them because the deployment's own taxonomy file declares them.
HIDDEN = ("memory", "certificates", "latency", "errors", "messaging", "email", "hardware")


def ask(h: SlackHarness, text: str) -> int:
    """Mention the bot in a channel; returns the id of the answer it stored and posted."""
    payload = mention("COPS", text)
    assert post(h.client, event_body(payload)).status_code == 200
    (reply,) = h.fake.wait_for(
        lambda c: c.method == "chat.postMessage"
        and c.args.get("thread_ts") == payload["event"]["ts"]
    )
    return int(action_values(reply)[ActionId.HELPFUL])


def correct(h: SlackHarness, answer_id: int, label: str) -> None:
    payload = load_payload(
        "block_actions_correct_label.json",
        answer_id=answer_id,
        response_url=h.fake.response_url("loop"),
        label=label,
    )
    assert post(h.client, interaction_body(payload)).status_code == 200


def wait_for_corrections(h: SlackHarness, count: int) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with session_scope(h.services.sessions) as session:
            done = len([f for f in repo.list_feedback(session=session) if f.kind == "correction"])
        if done >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {done} of {count} corrections stored")


@pytest.fixture(scope="module")
def loop(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack: Any):
    from bot.app import SAMPLES_DIR, build_services

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("loop") / "data")
    taxonomy = SAMPLES_DIR / "taxonomy.yaml"  # every category, HIDDEN ones included
    services = build_services(make_settings(data_dir, fake_slack.api_url, taxonomy_file=taxonomy))
    # The history starts with only some categories labelled: a weak first model.
    with session_scope(services.sessions) as session:
        hidden = session.query(Incident).filter(Incident.category.in_(HIDDEN)).all()
        truth = {row.text: row.category for row in hidden}
        session.execute(
            update(Incident).where(Incident.category.in_(HIDDEN)).values(category="")
        )
    outcome = services.classifiers.train("category", actor="test", force=True)
    harness = SlackHarness(services, fake_slack)
    yield harness, truth, outcome.version
    harness.close()
    services.close()


def active_version(h: SlackHarness) -> str:
    with session_scope(h.services.sessions) as session:
        return repo.get_active_model(session=session, target="category").version


def test_corrections_promote_a_better_model_and_a_worse_one_is_rejected(loop) -> None:
    h, truth, weak_version = loop
    assert active_version(h) == weak_version
    offered = h.bot.label_options()["category"]  # the model's labels, then the taxonomy's
    assert set(HIDDEN) <= set(offered)

    # 1. Answers are given and people correct the category on each of them.
    for text, label in truth.items():
        correct(h, ask(h, text), label)
    wait_for_corrections(h, len(truth))

    # 2. The scheduled retrain job runs; the challenger must measure better to be promoted.
    run = run_job("retrain", h.services)
    assert run is not None and run.outcome == "ok", run.detail
    promoted = active_version(h)
    assert promoted != weak_version
    with session_scope(h.services.sessions) as session:
        row = repo.get_model_version(session=session, version=promoted)
        decision, metrics = dict(row.decision), dict(row.metrics)
        versions = dict(row.library_versions)
    assert versions["sklearn"] == sklearn.__version__ and versions["skops"]  # recorded with it
    assert decision["promote"] is True
    assert decision["champion_version"] == weak_version
    assert metrics["accuracy"] > decision["champion"]["accuracy"]
    assert metrics["macro_f1"] > decision["champion"]["macro_f1"]

    # 3. The next answer is given by the promoted model, and says so in the audit trail.
    answer_id = ask(h, "Java heap keeps growing until the pod is OOMKilled on checkout-api")
    with session_scope(h.services.sessions) as session:
        answer = session.get(TriageAnswer, answer_id)
        assert answer.model_versions["category"] == promoted
        assert answer.answer["predictions"]
        assert answer.query == "Java heap keeps growing until the pod is OOMKilled on checkout-api"

    # 4. Wrong corrections (everything is "hardware") on training texts make a worse
    #    challenger on the untouched held-out split: it is rejected.
    before = len(truth)
    wrong = [t for t, label in truth.items() if label != "hardware" and not in_holdout(t)]
    assert len(wrong) >= 10
    for text in wrong:
        correct(h, ask(h, text), "hardware")
    wait_for_corrections(h, before + len(wrong))
    run = run_job("retrain", h.services)
    assert run is not None and run.outcome == "ok", run.detail
    assert active_version(h) == promoted
    with session_scope(h.services.sessions) as session:
        versions = repo.list_model_versions(session=session, target="category")
        rejected = versions[-1]
        assert rejected.status == "rejected"
        assert rejected.decision["promote"] is False
        assert rejected.metrics["accuracy"] < rejected.decision["champion"]["accuracy"]
        actions = [a.action for a in repo.list_audit(session=session)]
    assert "model_promoted" in actions and "model_rejected" in actions

    # 5. An admin rolls the promoted model back from App Home: the weak one answers again.
    home = rollback_from_app_home(h, ADMIN, "category", "rolled back from")
    assert f"from `{promoted}` to `{weak_version}`" in home
    assert active_version(h) == weak_version
    assert h.services.classifiers.active_versions()["category"] == weak_version
    with session_scope(h.services.sessions) as session:
        statuses = {v.version: v.status for v in
                    repo.list_model_versions(session=session, target="category")}
        audit = [(a.actor, a.action) for a in repo.list_audit(session=session)]
    assert statuses[promoted] == "rolled_back" and statuses[weak_version] == "active"
    assert (ADMIN, "model_rolled_back") in audit and (ADMIN, "home_rollback_done") in audit


def rollback_from_app_home(h: SlackHarness, user: str, target: str, expect: str) -> str:
    """Click "Roll back" for ``target`` in App Home; returns the App Home that says ``expect``."""
    payload = load_payload("block_actions_home_rollback.json", user=user, target=target)
    before = {id(c) for c in h.fake.calls_of("views.publish")}  # other modules' notices too
    assert post(h.client, interaction_body(payload)).status_code == 200
    (done,) = h.fake.wait_for(
        lambda c: c.method == "views.publish" and c.args["user_id"] == user
        and id(c) not in before and expect in json.dumps(c.args["view"]))
    return json.dumps(done.args["view"])
