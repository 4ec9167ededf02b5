"""Slack parts that need no models: rendering limits, visibility, pacing, text extraction."""

from __future__ import annotations

import json
import threading

import pytest
from slack_sdk.models.blocks import Block

from bot.slack.blocks import (
    clip,
    escape,
    prediction_text,
    render_details,
    render_triage,
)
from bot.slack.client import ChannelPacer, SlackPoster, make_web_client
from bot.slack.ids import ActionId
from bot.slack.normalize import message_text
from bot.slack.visibility import visibility_for_channel, visibility_of_new_item
from bot.triage_types import (
    Evidence,
    Hypothesis,
    LabelPrediction,
    RunbookMatch,
    SimilarIncident,
    Step,
    Triage,
)
from tests.slack.helpers import load_payload

HUGE = "x<y> & z " * 2000  # 18k characters with characters mrkdwn must escape


def huge_triage() -> Triage:
    ev = tuple(Evidence("incident", f"INC-{i}", HUGE[:300], 0.5) for i in range(5))
    return Triage(
        query=HUGE,
        predictions=(
            LabelPrediction("category", "disk", 0.91, (("disk", 0.91), ("db", 0.05)), "c-1",
                            top_terms=("wal", "volume"),
                            examples=tuple((f"INC-{i}: {HUGE}", "disk", 0.8) for i in range(3))),
            LabelPrediction("severity", None, 0.4, (("high", 0.4), ("low", 0.3)), "s-1"),
            LabelPrediction("team", "x" * 200, 0.7, (("y" * 300, 0.7),), "t-1"),
        ),
        similar=tuple(
            SimilarIncident(i, f"INC-{i}", "incident", HUGE, 0.8, HUGE, HUGE, url="https://x/y")
            for i in range(60)
        ),
        runbooks=tuple(
            RunbookMatch(i, "disk.md", "Disk full", "Mitigation", "```\n" + HUGE, 0.7)
            for i in range(5)
        ),
        hypotheses=tuple(Hypothesis(HUGE, 0.3, ev) for _ in range(20)),
        steps=tuple(Step(HUGE, ev) for _ in range(30)),
        novel=True,
        novelty_score=0.2,
        model_versions={"category": "c-1"},
        index_version="runbooks:1,incidents:2",
    )


def test_render_stays_inside_block_kit_limits_and_escapes():
    for render in (render_triage, render_details):
        text, blocks = render(huge_triage(), 42)
        assert text and len(text) <= 3000
        assert 0 < len(blocks) <= 50
        for raw in blocks:
            Block.parse(raw).validate_json()  # slack_sdk checks the documented limits
            if raw["type"] == "section":
                assert len(raw["text"]["text"]) <= 3000
        dumped = json.dumps(blocks)
        assert "x<y>" not in dumped and "x&lt;y&gt; &amp; z" in dumped
    _, details = render_details(huge_triage(), 42)
    labels = next(b["text"]["text"] for b in details if "*Category:*" in json.dumps(b))
    assert "because of: wal, volume" in labels
    assert labels.count("\n   like INC-") == 3 and "(disk, 0.80)" in labels  # the label's evidence


def test_compact_answer_has_feedback_controls_and_pointer_to_more():
    _, blocks = render_triage(huge_triage(), 42, label_options={"category": ["disk", "network"]})
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    ids = [a["action_id"] for a in actions]
    assert ids == [
        ActionId.HELPFUL,
        ActionId.NOT_HELPFUL,
        ActionId.CORRECT_LABEL,
        ActionId.RECORD_ROOT_CAUSE,
        ActionId.MORE,
    ]
    assert all(a.get("value", "42").startswith("42") for a in actions)
    correct = actions[2]
    groups = {
        g["label"]["text"]: [o["value"] for o in g["options"]] for g in correct["option_groups"]
    }
    assert groups["Category"] == ["42|category|disk", "42|category|network"]
    assert all(len(v) <= 150 for vs in groups.values() for v in vs)
    assert "see More" in json.dumps(blocks)
    assert "unsure" in blocks[0]["text"]["text"]


def test_answer_without_id_has_no_controls_and_round_trips():
    triage = huge_triage()
    _, blocks = render_triage(triage, None)
    assert not [b for b in blocks if b["type"] == "actions"]
    restored = Triage.from_dict(json.loads(json.dumps(triage.to_dict())))
    assert restored == triage


def test_an_answer_stored_by_a_newer_release_still_loads():
    # rolling update: this replica renders a "More" click on an answer a newer one stored,
    # whose items carry keys this release does not know
    triage = huge_triage()
    stored = json.loads(json.dumps(triage.to_dict()))
    assert stored["similar"] and stored["runbooks"] and stored["hypotheses"]
    for item in [*stored["similar"], *stored["runbooks"],
                 *[e for h in stored["hypotheses"] for e in h["evidence"]]]:
        item["added_later"] = 0.5  # (``similarity`` was the example once; it is known now)
    stored["added_later"] = {"x": 1}
    assert Triage.from_dict(stored) == triage


def test_clip_never_leaves_half_an_entity_or_an_open_code_fence():
    text = "```\n" + escape("<" * 100)
    cut = clip(text, 60)
    assert len(cut) <= 60 and cut.count("```") % 2 == 0
    assert not cut.replace("… _see More_", "").rstrip("`\n ").endswith("&l")


def test_runbook_markdown_links_become_slack_links_and_are_never_cut_in_half():
    """mrkdwn has no [label](url): runbook excerpts, causes and steps showed it as written."""
    ev = Evidence("runbook", "k/KubePodCrashLooping.md#Mitigation", "Kube Pod", 0.9)
    url = "https://kubernetes.io/docs/debug/?a=1&b=2"
    triage = Triage(
        query="q",
        runbooks=(RunbookMatch(1, "k/KubePodCrashLooping.md", "Kube Pod Crash Looping",
                               "Diagnosis", f"See [Debugging Pods]({url}) and [raft][r].",
                               0.9),),
        hypotheses=(Hypothesis(f"Pod dies, see [restarts]({url}).", 0.4, (ev,)),),
        steps=(Step(f"Read [the docs]({url}) on <pods>.", (ev,)),),
    )
    _, blocks = render_triage(triage, 7)
    text = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert "](" not in text and "[raft][r]" not in text
    linked = "https://kubernetes.io/docs/debug/?a=1&amp;b=2"
    for label in ("Debugging Pods", "restarts", "the docs"):
        assert f"<{linked}|{label}>" in text
    assert "and raft." in text and "&lt;pods&gt;" in text  # escaping still applies
    cut = clip(f"before <{linked}|Debugging Pods> after", 40)
    assert "<" not in cut.replace("… _see More_", ""), cut


@pytest.mark.parametrize(
    ("channel", "mode", "visible", "hidden"),
    [
        ("C1", "alerts", ["public", "private:C1"], ["private:C2", "helpdesk"]),
        ("C1", "helpdesk", ["public", "private:C1", "helpdesk"], ["private:C2"]),
        ("C2", "off", ["public", "private:C2"], ["private:C1", "helpdesk"]),
    ],
)
def test_visibility_for_channel(channel, mode, visible, hidden):
    allowed = visibility_for_channel(channel, mode)
    assert all(allowed(v) for v in visible)
    assert not any(allowed(v) for v in hidden)


def test_visibility_of_recorded_items():
    assert visibility_of_new_item("C1", "alerts", is_private=False) == "public"
    assert visibility_of_new_item("C1", "helpdesk", is_private=False) == "helpdesk"
    assert visibility_of_new_item("C1", "alerts", is_private=True) == "private:C1"
    assert visibility_of_new_item("D1", "off", is_private=False) == "private:D1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_pacer_spaces_posts_per_channel_only():
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.run("C1", lambda: None)
    clock.now += 0.25
    pacer.run("C1", lambda: None)  # must wait the remaining 0.75 s
    pacer.run("C2", lambda: None)  # another channel: no wait
    pacer.run("C1", lambda: None)  # a full second after the previous C1 post
    assert clock.slept == [0.75, 1.0]


def test_poster_posts_in_order_and_retries_429(fake_slack):
    clock = FakeClock()
    client = make_web_client("xoxb-test", fake_slack.api_url)
    poster = SlackPoster(client, clock=clock, sleep=clock.sleep)
    fake_slack.rate_limit(1, retry_after=0, method="chat.postMessage")
    threads = [
        threading.Thread(target=poster.post, args=("CPACE", f"m{i}", None, "9.9")) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    calls = [c for c in fake_slack.calls if c.args.get("channel") == "CPACE"]
    assert [c.status for c in calls].count(429) == 1
    assert len([c for c in calls if c.status == 200]) == 3
    assert len(clock.slept) == 2  # the 2nd and 3rd post waited for their turn


def test_alertmanager_attachment_text_is_read():
    event = load_payload("bot_message_alertmanager.json")["event"]
    text = message_text(event)
    assert "[FIRING:1] HostOutOfDiskSpace" in text
    assert "/var/lib/postgresql" in text and "`" in text


def test_mention_text_is_cleaned():
    event = load_payload("app_mention.json")["event"]
    text = message_text(event, strip_user="UBOT")
    assert text == "disk full on db-01, /var/lib/postgresql at 100%"
    assert message_text({"text": "see <https://x.io/a|the graph> &amp; <#C1|ops>"}) == (
        "see the graph (https://x.io/a) & #ops"
    )


def test_manifest_declares_every_command_shortcut_and_the_one_url():
    from pathlib import Path

    import yaml

    from bot.slack.commands import USAGE
    from bot.slack.ids import CallbackId

    path = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml"
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    features, settings = manifest["features"], manifest["settings"]
    assert {c["command"] for c in features["slash_commands"]} == set(USAGE)
    assert [s["callback_id"] for s in features["shortcuts"]] == [
        CallbackId.TRIAGE_MESSAGE_SHORTCUT
    ]
    urls = {c["url"] for c in features["slash_commands"]}
    urls |= {settings["event_subscriptions"]["request_url"]}
    urls |= {settings["interactivity"]["request_url"]}
    # the options of an external select (a correction menu with more than 100 labels)
    urls |= {settings["interactivity"]["message_menu_options_url"]}
    assert urls == {"https://YOUR-HOST/slack/events"}
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"app_mention", "app_home_opened", "message.channels"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "commands", "files:write"} <= scopes
    # conversations.history: a thread posted by a leader that died before recording it
    assert {"channels:history", "groups:history"} <= scopes


def test_socket_mode_needs_an_app_token(tmp_path, fake_slack):
    from bot.server import Runtime
    from bot.slack.socket_mode import start_socket_mode
    from tests.slack.conftest import make_settings

    settings = make_settings(tmp_path, fake_slack.api_url, slack_app_token=None)
    with pytest.raises(RuntimeError, match="SLACK_APP_TOKEN"):
        start_socket_mode(Runtime(settings))


# --- SlackBot caches and the Slack route's body limit ---------------------------------------------


class _StubClient:
    """conversations.info answers from ``private``; counts the calls."""

    def __init__(self) -> None:
        self.private: set[str] = set()
        self.calls = 0

    def conversations_info(self, channel: str) -> dict:
        self.calls += 1
        return {"channel": {"id": channel, "is_private": channel in self.private}}


def _stub_bot(classifiers=None, settings=None):
    from types import SimpleNamespace

    from bot.slack.service import SlackBot

    ready = threading.Event()
    ready.set()
    services = SimpleNamespace(assistant=object(), classifiers=classifiers)
    runtime = SimpleNamespace(
        settings=settings or SimpleNamespace(), services=services, ready=ready, components={}
    )
    client = _StubClient()
    return SlackBot(runtime, SimpleNamespace(client=client)), client


def test_label_options_parse_the_taxonomy_once_until_the_file_changes(tmp_path, monkeypatch):
    import os
    from types import SimpleNamespace

    import yaml

    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("category: [database, network]\n", encoding="utf-8")
    bot, _ = _stub_bot(SimpleNamespace(active={}, taxonomy_path=taxonomy))
    parses = []
    real_load = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parses.append(1) or real_load(text))

    first = bot.label_options()
    second = bot.label_options()
    assert first == second == {"category": ["database", "network"]}
    assert len(parses) == 1
    second["category"].append("mutated")  # callers get their own lists
    assert bot.label_options() == {"category": ["database", "network"]}
    assert len(parses) == 1

    taxonomy.write_text("category: [database, network, storage]\n", encoding="utf-8")
    stat = taxonomy.stat()
    os.utime(taxonomy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert bot.label_options() == {"category": ["database", "network", "storage"]}
    assert len(parses) == 2


def test_label_options_add_the_labels_of_your_own_taxonomy_to_a_models(tmp_path):
    """A taxonomy file of your own declares labels a model may not have learnt yet: they are
    offered after the model's (to be taught through corrections). The bundled sample taxonomy
    (no TRIAGEBOT_TAXONOMY_FILE) only stands in for targets without a model."""
    from types import SimpleNamespace

    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text("category: [network, certificates]\nteam: [dba, sre]\n", encoding="utf-8")
    model = SimpleNamespace(model=SimpleNamespace(classes_=["database", "network"]))
    classifiers = SimpleNamespace(active={"category": model}, taxonomy_path=taxonomy)

    own, _ = _stub_bot(classifiers, SimpleNamespace(taxonomy_file=taxonomy))
    assert own.label_options() == {
        "category": ["database", "network", "certificates"],
        "team": ["dba", "sre"],
    }
    bundled, _ = _stub_bot(classifiers, SimpleNamespace(taxonomy_file=None))
    assert bundled.label_options() == {"category": ["database", "network"], "team": ["dba", "sre"]}


def test_a_correction_menu_offers_what_fits_and_searches_beyond_100_labels():
    from bot.slack.blocks import correction_option_groups, correction_select, offered_labels

    triage = huge_triage()  # category "disk", severity unsure (high, low), team "x" * 200
    offered = offered_labels(triage, {"category": ["disk", "db", "a" * 140]}, 42)
    # known labels, else the prediction's candidates; none whose value would pass 150 chars
    assert offered == {"category": ["disk", "db"], "severity": ["high", "low"]}
    assert offered_labels(None, {"category": ["disk"]}, 42) == {"category": ["disk"]}

    hundred = {"category": [f"c{i}" for i in range(97)], "severity": ["high", "low", "info"]}
    select = correction_select(42, hundred)
    assert select["type"] == "static_select"
    assert sum(len(g["options"]) for g in select["option_groups"]) == 100  # none left out
    more = {**hundred, "team": ["dba"]}
    select = correction_select(42, more)
    assert select["type"] == "external_select" and select["min_query_length"] == 0
    Block.parse({"type": "actions", "elements": [select]}).validate_json()

    groups = correction_option_groups(42, more, "")
    assert sum(len(g["options"]) for g in groups) == 100  # Slack takes at most 100
    groups = correction_option_groups(42, more, " C9 ")
    assert [o["value"] for g in groups for o in g["options"]] == [
        "42|category|c9", *(f"42|category|c{i}" for i in range(90, 97))
    ]
    assert [g["label"]["text"] for g in correction_option_groups(42, more, "team")] == ["Team"]


def test_private_channel_cache_expires(monkeypatch):
    from types import SimpleNamespace

    import bot.slack.service as service

    clock = [1000.0]
    monkeypatch.setattr(service, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    bot, client = _stub_bot()

    assert bot.channel_is_private("CTTL") is False
    client.private.add("CTTL")  # the channel is converted to private
    clock[0] += service.PRIVATE_TTL - 1
    assert bot.channel_is_private("CTTL") is False  # still cached
    assert client.calls == 1
    clock[0] += 2
    assert bot.channel_is_private("CTTL") is True  # expired: asked again
    assert client.calls == 2
    assert bot.channel_is_private("D123") is True and client.calls == 2


def test_slack_route_stops_reading_an_oversized_body_without_content_length():
    import asyncio
    from types import SimpleNamespace

    from starlette.requests import Request

    from bot.slack.http import slack_routes

    runtime = SimpleNamespace(
        settings=SimpleNamespace(slack_enabled=False, max_body_bytes=2500),
        components={"slack_app": object()},  # never reached: the body is refused first
    )
    (route,) = slack_routes(runtime)
    received = []

    async def receive() -> dict:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": len(received) < 100}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/slack/events",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],  # no Content-Length
    }
    response = asyncio.run(route.endpoint(Request(scope, receive)))
    assert response.status_code == 413
    assert json.loads(response.body) == {"ok": False, "error": "body too large"}
    assert len(received) == 3  # stopped at the chunk that passed the limit, not after 100


def test_message_updates_share_one_workspace_wide_pace(fake_slack):
    """chat.update is limited per workspace, not per channel: updates of messages in
    different channels still wait for each other."""
    clock = FakeClock()
    client = make_web_client("xoxb-test", fake_slack.api_url)
    poster = SlackPoster(client, clock=clock, sleep=clock.sleep)
    for channel in ("CUPD1", "CUPD2", "CUPD3"):
        poster.update(channel, "1.0", "3 alerts", None)
    assert clock.slept == [1.2, 1.2]
    poster.post("CUPD1", "new", None)  # posts keep their own per-channel pace
    assert clock.slept == [1.2, 1.2]


def test_similar_items_are_headed_for_the_reader():
    """A help-desk agent sees "solved tickets", an on-call engineer "past incidents"."""
    def heading(*kinds: str) -> str:
        similar = tuple(SimilarIncident(i, f"X-{i}", kind, "vpn down", 0.8, "", "fix it")
                        for i, kind in enumerate(kinds))
        found = set()
        for render in (render_triage, render_details):  # the answer and its "More details"
            _, blocks = render(Triage(query="vpn down", similar=similar), None)
            texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
            found.add(next(t.splitlines()[0] for t in texts if t.startswith("*Similar")))
        (only,) = found
        return only

    assert heading("ticket", "ticket") == "*Similar solved tickets*"
    assert heading("incident") == "*Similar past incidents*"
    assert heading("incident", "ticket") == "*Similar past incidents and tickets*"


def test_app_home_offers_roll_back_to_admins_for_trained_models_only() -> None:
    from bot.slack.views import home_view, parse_rollback_value

    models = {
        "category": ("category-20261125-1", "supervised", {"accuracy": 0.91}),
        "team": ("team-zero-shot", "zero-shot", {}),
    }

    def rollback_buttons(is_admin: bool) -> list[dict]:
        view = home_view(sizes={"runbooks": 3}, models=models, feedback={}, is_admin=is_admin)
        Block.parse_all(view["blocks"])  # valid Block Kit
        return [b["accessory"] for b in view["blocks"]
                if b.get("accessory", {}).get("action_id") == ActionId.HOME_ROLLBACK]

    (button,) = rollback_buttons(is_admin=True)  # a zero-shot model has nothing to go back to
    # it names the version shown: a double click rolls back once (test_home_rollback.py)
    assert parse_rollback_value(button["value"]) == ("category", "category-20261125-1")
    assert parse_rollback_value("category") == ("category", "")  # an App Home from before
    assert button["confirm"]["style"] == "danger"  # a misclick asks first
    assert "category" in button["confirm"]["text"]["text"]
    assert rollback_buttons(is_admin=False) == []


def test_app_home_says_what_a_zero_shot_model_was_measured_on() -> None:
    from bot.slack.views import home_view

    models = {
        "team": ("team-zero-shot", "zero-shot",
                 {"accuracy": 0.6, "coverage": 0.25, "covered_accuracy": 0.95, "measured_on": 20}),
        "severity": ("severity-zero-shot", "zero-shot", {}),
    }
    view = home_view(sizes={}, models=models, feedback={}, is_admin=False)
    text = "\n".join(b["text"]["text"] for b in view["blocks"] if b.get("type") == "section")
    assert ("*team*: `team-zero-shot` (zero-shot) — accuracy 0.60, coverage 0.25, "
            "on the 20 labelled examples so far") in text
    assert "*severity*: `severity-zero-shot` (zero-shot) — not measured" in text


def test_app_home_says_how_each_model_does_in_use() -> None:
    from datetime import UTC, datetime

    from bot.slack.home import watch_line
    from bot.slack.views import home_view

    checked = datetime(2026, 11, 25, 3, 41, tzinfo=UTC)
    moved = {"should_retrain": True, "reason": "feedback accuracy 0.61 fell below 0.83"}
    line = watch_line([True, True, False, True], moved, checked)
    assert "3 of 4 of its answers judged by feedback were right (75%)" in line
    assert ":warning: drift check 2026-11-25 03:41 UTC: feedback accuracy 0.61" in line
    quiet = watch_line([], {"should_retrain": False, "reason": "no drift"}, checked)
    assert quiet.startswith("no feedback on its answers in the last 7 days")
    assert ":warning:" not in quiet and "no drift" in quiet
    assert watch_line([True], None, None).endswith("no drift check yet")

    view = home_view(sizes={}, models={"team": ("team-1", "supervised", {})}, feedback={},
                     is_admin=False, watch={"team": "<b>1 of 2</b> right"})
    Block.parse_all(view["blocks"])
    text = json.dumps(view)
    assert "&lt;b&gt;1 of 2&lt;/b&gt; right" in text  # escaped like any other text


def test_unsure_says_what_confidence_the_model_needs():
    """A 98% top candidate with "unsure" is puzzling unless the answer says the model
    answers only from 99% (or not at all yet), in Slack, in the CLI and after a round trip."""
    import io

    from rich.console import Console

    from bot.render_text import render_triage as render_cli
    from bot.triage_types import LabelPrediction, Triage

    close = LabelPrediction("team", None, 0.98, (("dba", 0.98), ("net", 0.01)), "t-1",
                            threshold=0.9812)
    never = LabelPrediction("category", None, 0.6, (("disk", 0.6),), "zs", threshold=1.01)
    sure = LabelPrediction("severity", "high", 0.95, (("high", 0.95),), "s-1", threshold=0.9)
    assert prediction_text(close) == (
        "*Team:* unsure (maybe dba 98%, net 1%; answers from 99% confidence)")
    assert "not precise enough on the labelled examples yet; more labels help" in \
        prediction_text(never)
    assert prediction_text(sure) == "*Severity:* high (95%)"
    assert LabelPrediction("team", None, 0.5, (("dba", 0.5),)).why_unsure() == ""

    triage = Triage(query="q", predictions=(close, never, sure))
    assert Triage.from_dict(json.loads(json.dumps(triage.to_dict()))) == triage
    out = io.StringIO()
    render_cli(Console(file=out, width=200), triage)
    assert "unsure (dba 98%, net 1%) - answers from 99% confidence" in out.getvalue()


def test_an_alerts_own_label_comes_first_and_the_model_only_when_it_differs():
    """An alert whose rule says `severity: critical` got "Severity: unsure (maybe critical
    66%)": the rule author's word was not shown at all."""
    import io

    from rich.console import Console

    from bot.render_text import render_triage as render_cli
    from bot.slack.blocks import fallback_text
    from bot.triage_types import LabelPrediction, Triage

    def given(label: str | None, confidence: float, value: str) -> LabelPrediction:
        return LabelPrediction("severity", label, confidence, ((label or "warning", 0.66),),
                               "s-1", threshold=0.9, given=value, given_by="alert")

    agrees, unsure = given("critical", 0.95, "critical"), given(None, 0.66, "critical")
    differs = given("warning", 0.93, "<!channel> critical")
    assert prediction_text(agrees) == "*Severity:* critical (from the alert)"
    assert prediction_text(unsure) == "*Severity:* critical (from the alert)"
    assert prediction_text(differs) == (
        "*Severity:* &lt;!channel&gt; critical (from the alert; model: warning 93%)")
    triage = Triage(query="q", predictions=(differs,))
    assert fallback_text(triage).startswith("Triage: severity: &lt;!channel&gt; critical")
    assert Triage.from_dict(json.loads(json.dumps(triage.to_dict()))) == triage
    out = io.StringIO()
    render_cli(Console(file=out, width=200), Triage(query="q", predictions=(unsure,)))
    assert "severity: critical (from the alert)" in out.getvalue()


def test_app_home_does_not_present_a_model_that_never_answers_as_accurate() -> None:
    from bot.slack.views import home_view

    models = {"severity": ("severity-1", "supervised",
                           {"accuracy": 0.38, "macro_f1": 0.2, "coverage": 0.0})}
    view = home_view(sizes={}, models=models, feedback={}, is_admin=False)
    text = "\n".join(b["text"]["text"] for b in view["blocks"] if b.get("type") == "section")
    assert ("*severity*: `severity-1` (supervised) — always unsure so far: never confident "
            "enough to answer (accuracy 0.38, macro-F1 0.20, coverage 0.00, of its top guess)"
            ) in text
