"""A retrain that changes the active model posts a report with a PNG chart to the admins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.jobs import admin_notifier, run_job
from bot.server import Runtime
from bot.store import repository as repo
from bot.store.db import session_scope
from tests.conftest import copy_data_dir
from tests.slack.conftest import make_settings

ADMIN_CHANNEL = "CADMIN"


@pytest.fixture(scope="module")
def runtime(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack):
    from bot.app import build_services

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("report") / "data")
    settings = make_settings(data_dir, fake_slack.api_url, admin_channel=ADMIN_CHANNEL)
    services = build_services(settings)
    rt = Runtime(settings)
    rt.start(services, background=False)
    yield rt
    rt.stop()  # its alert pipeline would go on calling the session's Slack stand-in
    services.close()


def test_promotion_report_is_uploaded_to_the_admin_channel(runtime, fake_slack) -> None:
    fake_slack.reset()
    services = runtime.services
    texts, labels = services.classifiers.training_data("category")
    with session_scope(services.sessions) as session:
        before = {m.target: m.version for m in repo.list_model_versions(session=session)
                  if m.status == "active"}
        # new labelled data since the last training (unchanged data is not retrained)
        repo.add_labeled_example(session=session, text=texts[0] + " (reported again)",
                                 field="category", label=labels[0], origin="feedback",
                                 feedback_id=None)
    run = run_job("retrain", services, notify=admin_notifier(runtime))
    assert run is not None and run.outcome == "ok", run.detail
    assert run.detail["promoted"], run.detail
    (complete,) = fake_slack.wait_for(lambda c: c.method == "files.completeUploadExternal")
    assert complete.args["channel_id"] == ADMIN_CHANNEL
    comment = complete.args.get("initial_comment", "")
    assert "Retrain" in comment
    promoted = run.detail["promoted"][0]
    assert promoted in comment
    assert before[promoted.rsplit("-", 1)[0]] in comment  # old version named beside the new
    (upload,) = fake_slack.calls_of("upload")
    assert upload.args["bytes"] > 1000  # the PNG chart itself
    files = json.loads(complete.args["files"]) if isinstance(complete.args["files"], str) else (
        complete.args["files"]
    )
    assert files[0]["title"] == "Model report"
