"""`triagebot models list|show|promote|rollback` on the database a running bot serves, and its
App Home: both tell the same story, the running bot picks up what the command line changed
(the replica sync), the audit trail names the person on either side, and Roll back goes to
the version that was active before, also after an older version was promoted by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.store import repository as repo
from bot.store.db import session_scope
from tests.slack.conftest import ADMIN, SlackHarness, private_harness
from tests.slack.test_home_rollback import (
    done_notices,
    home_button,
    model_line,
    open_home,
    press_rollback,
    published_with,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_slack: Any):
    with private_harness(sample_data_dir, tmp_path_factory, fake_slack, "cli-home") as harness:
        yield harness


def cli(h: SlackHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`triagebot ARGS` on the bot's database, run by the login "alice"."""
    env = {**os.environ, "TRIAGEBOT_DATA_DIR": str(h.settings.data_dir),
           "TRIAGEBOT_DATABASE_URL": h.settings.database_url,
           "TRIAGEBOT_SCHEDULER_ENABLED": "false", "LOGNAME": "alice", "USER": "alice"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def listed(h: SlackHarness, target: str) -> dict[str, str]:
    result = cli(h, "models", "list", "--target", target, "--json")
    assert result.returncode == 0, result.stderr
    return {r["version"]: r["status"] for r in json.loads(result.stdout)}


def shown_on_home(h: SlackHarness, target: str) -> str:
    """The version the admin's App Home shows for ``target`` once the bot synced."""
    h.services.classifiers.sync()  # what every replica does each minute
    open_home(h, ADMIN)
    (call,) = [c for c in h.fake.calls_of("views.publish") if c.args["user_id"] == ADMIN][-1:]
    line = model_line(call.args["view"], target)
    return line.split("`")[1]


def test_the_command_line_and_the_app_home_agree(home) -> None:
    classifiers = home.services.classifiers
    first = classifiers.active_versions()["category"]
    second = classifiers.train("category", actor="test", force=True).version
    assert listed(home, "category") == {first: "retired", second: "active"}
    assert shown_on_home(home, "category") == second
    show = cli(home, "models", "show", "category", "--json")
    assert json.loads(show.stdout)["version"] == second

    # rolled back on the command line: the running bot and its App Home follow
    back = cli(home, "models", "rollback", "category")
    assert back.returncode == 0, back.stderr
    assert f"category: rolled back from {second} to {first}" in back.stdout
    assert f"models promote {second}" in back.stdout  # the undo, as the App Home gives it
    assert listed(home, "category") == {first: "active", second: "rolled_back"}
    assert shown_on_home(home, "category") == first
    assert classifiers.active_versions()["category"] == first
    with session_scope(home.services.sessions) as session:
        (entry,) = [a for a in repo.list_audit(session=session)
                    if a.action == "model_rolled_back"]
    assert (entry.actor, entry.subject, entry.detail["from"]) == ("cli:alice", first, second)

    # nothing earlier: both say so, and change nothing
    again = cli(home, "models", "rollback", "category")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "no earlier promoted version" in again.stderr
    press_rollback(home, ADMIN, home_button(home, ADMIN, "category")["value"])
    (summary,) = done_notices(home, ADMIN, "category", 1)
    assert "no earlier promoted version" in summary
    assert listed(home, "category") == {first: "active", second: "rolled_back"}

    # the undo the notice gives
    promoted = cli(home, "models", "promote", second)
    assert promoted.returncode == 0 and f"{second} is now active" in promoted.stdout
    assert listed(home, "category") == {first: "retired", second: "active"}
    assert shown_on_home(home, "category") == second
    with session_scope(home.services.sessions) as session:
        actors = {a.actor for a in repo.list_audit(session=session)
                  if a.action == "model_promoted_manually"}
    assert actors == {"cli:alice"}


def test_roll_back_after_an_older_version_was_promoted_goes_to_the_one_it_replaced(
        home) -> None:
    """An admin promotes an older version by hand (`models promote`), then presses Roll
    back: the version active before it answers again. Versions were compared by age, so the
    newer one it had replaced was never "earlier": nothing (or an even older one) came back."""
    classifiers = home.services.classifiers
    older = classifiers.active_versions()["team"]
    newer = classifiers.train("team", actor="test", force=True).version
    assert cli(home, "models", "promote", older).returncode == 0
    assert shown_on_home(home, "team") == older
    assert listed(home, "team") == {older: "active", newer: "retired"}

    pressed = press_rollback(home, ADMIN, home_button(home, ADMIN, "team")["value"])
    (summary,) = done_notices(home, ADMIN, "team", 1)
    assert f"rolled back from `{older}` to `{newer}`" in summary
    assert listed(home, "team") == {older: "rolled_back", newer: "active"}
    assert classifiers.active_versions()["team"] == newer
    view = published_with(home, ADMIN, "rolled back from", pressed)
    assert f"`{newer}`" in model_line(view, "team")
