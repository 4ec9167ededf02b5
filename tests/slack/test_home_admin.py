"""App Home admin buttons as an admin uses them: a double click on "Retrain now" (or
"Reindex runbooks") while the first run is still going. On a private copy of the samples, so
that the retrains it runs do not change the models other tests see."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.store import repository as repo
from bot.store.db import session_scope
from tests.slack.conftest import ADMIN, SlackHarness, private_harness
from tests.slack.helpers import interaction_body, load_payload, post


@pytest.fixture(scope="module")
def home(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack: Any):
    with private_harness(sample_data_dir, tmp_path_factory, fake_slack, "home") as harness:
        yield harness


def press(h: SlackHarness, task: str, user: str = ADMIN) -> None:
    payload = load_payload("block_actions_home_retrain.json", user=user)
    payload["actions"][0].update(action_id=f"home_{task}", value=task)
    assert post(h.client, interaction_body(payload)).status_code == 200


def test_a_double_click_on_retrain_starts_one_retrain(home, fake_slack, monkeypatch):
    """Both clicks of a double click arrive while the first retrain runs (it takes minutes
    on real history). They came from the same admin, so they took the job's lease under the
    same holder name: the second "renewed" the first's lease and ran a second retrain beside
    it (and the first to finish released the lease under the other)."""
    classifiers = home.services.classifiers
    real_train_all = classifiers.train_all
    entered: list[str] = []
    changed = threading.Condition()
    release = threading.Event()

    def gated_train_all(*args: Any, **kwargs: Any) -> Any:
        # the real retrain, held at its start until both clicks have been handled
        with changed:
            entered.append(threading.current_thread().name)
            changed.notify_all()
        release.wait(60)
        return real_train_all(*args, **kwargs)

    monkeypatch.setattr(classifiers, "train_all", gated_train_all)

    def notice(c: Any) -> bool:  # what the admin sees after each click
        view = json.dumps(c.args.get("view"))
        return (c.method == "views.publish" and c.args.get("user_id") == ADMIN
                and ("retrain started by" in view or "A retrain is already running" in view))

    before = len([c for c in fake_slack.calls_of("views.publish") if notice(c)])
    try:
        press(home, "retrain")
        with changed:
            assert changed.wait_for(lambda: len(entered) == 1, timeout=60)
        press(home, "retrain")  # the second click of the double click
        second = fake_slack.wait_for(notice, count=before + 2)[before + 1]
        assert "A retrain is already running" in json.dumps(second.args["view"])
    finally:
        release.set()
    fake_slack.wait_for(lambda c: c.method == "views.publish" and c.args["user_id"] == ADMIN
                        and "Retrain done" in json.dumps(c.args["view"]), timeout=120)
    assert len(entered) == 1, "the double click ran two retrains"
    with session_scope(home.services.sessions) as session:
        requested = [a for a in repo.list_audit(session=session)
                     if a.action == "home_retrain_requested"]
        # and the lease is free again for the nightly job
        assert repo.acquire_lease(session=session, name="retrain", holder="nightly-job",
                                  ttl=timedelta(minutes=1))
        repo.release_lease(session=session, name="retrain", holder="nightly-job")
    assert len(requested) == 1
