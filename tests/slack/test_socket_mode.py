"""Socket Mode end to end: the real Bolt app behind slack_sdk's Socket Mode client, connected
to a local WebSocket server standing in for Slack (tests/fakes/socket_mode.py), the Web API
faked as in the other Slack tests. The same listeners must give the same answers as over
HTTP, survive junk envelopes, and reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack.commands import USAGE
from bot.slack.ids import ActionId
from tests.fakes.socket_mode import FakeSocketModeServer
from tests.slack.helpers import action_values, event_body, load_payload, mention, post
from tests.slack.test_e2e import ephemerals, replies_in


@pytest.fixture
def socket_server(fake_slack: Any) -> Iterator[FakeSocketModeServer]:
    server = FakeSocketModeServer()
    fake_slack.socket_mode_url = server.url
    yield server
    fake_slack.socket_mode_url = ""
    server.stop()


def socket_runtime(services: Any) -> Any:
    """A runtime started as `triagebot serve --socket-mode` starts it (on the shared
    services); Socket Mode connects once the runtime is ready."""
    from bot.server import Runtime
    from bot.slack.socket_mode import start_socket_mode
    from bot.workers import WorkerPool

    settings = services.settings.model_copy(update={"slack_app_token": "xapp-1-test"})
    runtime = Runtime(settings)
    runtime.components["workers"] = WorkerPool(workers=2)

    def connect(rt: Any) -> None:  # as bot.lifecycle.register_background_parts does
        rt.components["socket_mode"] = start_socket_mode(rt)

    runtime.on_ready(connect)
    runtime.start(services, background=False)
    bot = runtime.components.get("slack_bot")
    if bot is not None:
        bot.poster.pacer.interval = bot.poster.update_pacer.interval = 0.0
    return runtime


@pytest.fixture
def socket_app(slack_services: Any, socket_server: FakeSocketModeServer) -> Iterator[Any]:
    runtime = socket_runtime(slack_services)
    assert runtime.ready.is_set(), runtime.error
    socket_server.wait_connected()
    yield runtime
    close(runtime)


def close(runtime: Any) -> None:
    handler = runtime.components.get("socket_mode")
    if handler is not None:
        handler.close()
    runtime.stop()  # its alert pipeline's threads would outlive the test
    runtime.components["workers"].shutdown(wait=True)


def test_a_mention_gets_the_same_answer_as_over_http(harness, fake_slack, socket_app,
                                                     socket_server):
    text = "disk full on db-01, /var/lib/postgresql at 100%"
    over_http = mention("COPS", text)
    assert post(harness.client, event_body(over_http)).status_code == 200
    (http_reply,) = replies_in(fake_slack, over_http["event"]["ts"])

    over_socket = mention("COPS", text)
    envelope = socket_server.envelope("events_api", over_socket)
    assert socket_server.ack_of(envelope) == {"envelope_id": envelope}
    (socket_reply,) = replies_in(fake_slack, over_socket["event"]["ts"])
    assert socket_reply.args["text"] == http_reply.args["text"]
    assert socket_reply.args["channel"] == "COPS"

    # Slack retries an event it saw no ack for: same event id, answered once
    again = socket_server.envelope("events_api", over_socket, retry_attempt=1,
                                   retry_reason="timeout")
    socket_server.ack_of(again)
    assert len(replies_in(fake_slack, over_socket["event"]["ts"])) == 1


def test_commands_buttons_and_forms_are_answered_over_the_socket(fake_slack, socket_app,
                                                                 socket_server):
    # a slash command without text: the usage is the ack's payload
    command = load_payload("slash_triage.json", response_url=fake_slack.response_url("sm-cmd"))
    command["text"] = ""
    envelope = socket_server.envelope("slash_commands", command)
    assert socket_server.ack_of(envelope)["payload"] == {"text": USAGE["/triage"]}
    # with text: acked at once, answered through its response_url
    command["text"] = "kafka consumer lag growing on orders topic"
    socket_server.ack_of(socket_server.envelope("slash_commands", command))
    (answer,) = fake_slack.wait_for(lambda c: c.path.endswith("/response/sm-cmd"))
    assert answer.args["response_type"] == "in_channel" and answer.args["text"]
    answer_id = int(action_values(answer)[ActionId.HELPFUL])
    # a button: stored and acknowledged
    click = load_payload("block_actions_helpful.json", answer_id=answer_id,
                         response_url=fake_slack.response_url("sm-click"))
    click["user"]["id"] = "USOCKET"
    socket_server.ack_of(socket_server.envelope("interactive", click))
    note = ephemerals(fake_slack, "Thanks, recorded: helpful")[-1]
    assert note.args["user"] == "USOCKET"
    # a form with its fields empty: the errors travel back in the ack
    form = load_payload("view_submission_root_cause.json", answer_id=answer_id,
                        thread_ts="1.1", root_cause="", fix="")
    ack = socket_server.ack_of(socket_server.envelope("interactive", form))
    assert ack["payload"]["response_action"] == "errors"
    assert set(ack["payload"]["errors"]) == {"rc_root_cause", "rc_fix"}


def test_junk_envelopes_do_not_stop_the_next_one(fake_slack, socket_app, socket_server):
    socket_server.send("not json at all")
    socket_server.send({"type": "hello", "num_connections": 1})
    socket_server.send({"type": "events_api", "envelope_id": "E-no-payload"})
    socket_server.envelope("events_api", {"type": "event_callback", "event": "junk"})
    payload = mention("COPS", "redis latency spikes on cache-02")
    socket_server.ack_of(socket_server.envelope("events_api", payload))
    replies_in(fake_slack, payload["event"]["ts"])


def test_it_reconnects_when_slack_asks_or_the_connection_drops(fake_slack, socket_app,
                                                                socket_server):
    opened = len(fake_slack.calls_of("apps.connections.open"))
    socket_server.ask_to_reconnect()
    socket_server.wait_connected(2)
    socket_server.drop()
    socket_server.wait_connected(3)  # the client's monitor notices within its ping interval
    assert len(fake_slack.calls_of("apps.connections.open")) >= opened + 2
    payload = mention("COPS", "nginx 502 bad gateway on web-03")
    socket_server.ack_of(socket_server.envelope("events_api", payload), timeout=60)
    replies_in(fake_slack, payload["event"]["ts"])


def test_slack_unreachable_at_start_does_not_take_the_bot_down(slack_services, fake_slack,
                                                               socket_server):
    """apps.connections.open failing once at start (a Slack hiccup, the network not up yet)
    made the whole start-up fail: /readyz said "failed" for good, and the webhooks answered
    503 to every alert until someone restarted the process. Slack is now connected in the
    background, retried until it answers."""
    fake_slack.fail("apps.connections.open", "internal_error", n=2)
    runtime = socket_runtime(slack_services)
    try:
        assert runtime.ready.is_set(), f"{runtime.status}: {runtime.error}"
        socket_server.wait_connected(timeout=120)
        payload = mention("COPS", "TLS certificate expires in 3 days on api.example.com")
        socket_server.ack_of(socket_server.envelope("events_api", payload))
        replies_in(fake_slack, payload["event"]["ts"])
    finally:
        close(runtime)


def test_a_wrong_app_token_still_fails_loudly(slack_services, fake_slack, socket_server):
    fake_slack.fail("apps.connections.open", "invalid_auth")
    runtime = socket_runtime(slack_services)
    try:
        assert not runtime.ready.is_set()
        assert "SLACK_APP_TOKEN" in runtime.error and "invalid_auth" in runtime.error
    finally:
        runtime.stop()  # its spool replayer started before Socket Mode failed
        runtime.components["workers"].shutdown(wait=True)
