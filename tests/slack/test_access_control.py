"""Access control on retrieval: an incident recorded in a private channel is shown only there."""

from __future__ import annotations

import json

from bot.slack.ids import ActionId
from bot.store import repository as repo
from bot.store.db import session_scope
from tests.slack.helpers import (
    action_values,
    command_body,
    interaction_body,
    load_payload,
    post,
)
from tests.slack.test_e2e import ask, click, ephemerals

CAUSE = "frobnicator lease table exhausted on vault-proxy after the quarterly key roll"


def test_private_channel_incident_is_never_shown_in_another_channel(harness, fake_slack):
    text = "vault-proxy on sec-03 refuses frobnicator leases with error 0x5E"
    payload, reply = ask(harness, "CPRIV", text)
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    click(harness, "block_actions_record_root_cause.json", answer_id)
    fake_slack.wait_for(
        lambda c: c.method == "views.open"
        and json.loads(c.args["view"]["private_metadata"])["answer_id"] == answer_id
    )
    submission = load_payload(
        "view_submission_root_cause.json",
        answer_id=answer_id,
        thread_ts=payload["event"]["ts"],
        root_cause=CAUSE,
        fix="flush the frobnicator lease table and raise lease_max to 4096",
    )
    submission["view"]["private_metadata"] = json.dumps(
        {**json.loads(submission["view"]["private_metadata"]), "channel": "CPRIV"}
    )
    assert post(harness.client, interaction_body(submission)).status_code == 200
    ephemerals(fake_slack, "root cause and fix saved")
    with session_scope(harness.services.sessions) as session:
        (incident,) = [i for i in repo.list_incidents(session=session) if i.root_cause == CAUSE]
        assert incident.visibility == "private:CPRIV"

    again = "vault-proxy refuses frobnicator leases again, error 0x5E on sec-04"
    # The private channel itself finds it ...
    _, inside = ask(harness, "CPRIV", again)
    assert "frobnicator lease table exhausted" in inside.blocks_text()
    # ... every other channel, public or help-desk, never does.
    for channel in ("COPS", "CHELP", "CALERTS"):
        _, outside = ask(harness, channel, again)
        assert "frobnicator lease table exhausted" not in outside.blocks_text()
        assert "frobnicator lease table exhausted" not in outside.args.get("text", "")


def _similar(harness, fake_slack, channel: str, text: str, name: str) -> str:
    """Run ``/similar text`` in ``channel``; the ephemeral answer's blocks as JSON text."""
    payload = load_payload("slash_triage.json", response_url=fake_slack.response_url(name))
    payload.update({"command": "/similar", "text": text, "channel_id": channel})
    assert post(harness.client, command_body(payload)).status_code == 200
    (call,) = fake_slack.wait_for(lambda c: c.path.endswith(f"/response/{name}"))
    assert call.args["response_type"] == "ephemeral"
    return json.dumps(call.args["blocks"])


def test_similar_filters_visibility_inside_the_index_not_after_top_k(harness, fake_slack):
    """More private matches than /similar's top k must not crowd out a visible one."""
    services = harness.services
    ids = []
    with session_scope(services.sessions) as session:
        for i in range(10):
            row, _ = repo.upsert_incident(
                session=session,
                external_id=f"PRIV-ZORBLAX-{i}",
                kind="incident",
                title=f"zorblax quuxgate handshake timeout on qx-{i:02d} private twin",
                description="zorblax quuxgate handshake timeout, quuxgate rejects zorblax",
                root_cause="zorblax quuxgate handshake timeout after the cert roll",
                resolution="restart quuxgate",
                visibility="private:CPRIV",
            )
            ids.append(row.id)
        row, _ = repo.upsert_incident(
            session=session,
            external_id="PUB-ZORBLAX",
            kind="incident",
            title="quuxgate slow public outage",
            description="quuxgate was slow for everyone",
            root_cause="quuxgate thread pool too small",
            resolution="raise the pool size",
            visibility="public",
        )
        ids.append(row.id)
    for row_id in ids:
        services.knowledge.add_incident(row_id)

    query = "zorblax quuxgate handshake timeout"
    outside = _similar(harness, fake_slack, "COPS", query, "similar-vis-cops")
    assert "private twin" not in outside
    # Filtering after the top k left nothing here ("Nothing close found.").
    assert "quuxgate slow public outage" in outside
    inside = _similar(harness, fake_slack, "CPRIV", query, "similar-vis-cpriv")
    assert "private twin" in inside
