from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

from bot.events import AlertStatus, Event, EventKind, EventSource
from bot.intake.grouping import AlertGrouper, GroupingRules, group_lines
from bot.intake.templates import TemplateMiner

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _ids():
    counter = itertools.count(1)
    return lambda: f"g{next(counter)}"


def ev(
    name: str = "HighLatency",
    text: str = "",
    fingerprint: str = "",
    group_key: str = "",
    status: AlertStatus = AlertStatus.FIRING,
    **labels: str,
) -> Event:
    return Event(
        source=EventSource.ALERTMANAGER,
        kind=EventKind.ALERT,
        text=text or f"[warning] {name}: something happened",
        title=name,
        labels={"alertname": name, **labels},
        fingerprint=fingerprint,
        group_key=group_key,
        status=status,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_duplicates_inside_window_and_status_change() -> None:
    g = AlertGrouper(window_seconds=300, id_factory=_ids())
    first = g.assign(ev(fingerprint="fp1"), at(0))
    assert first.is_new_group and not first.is_duplicate and first.count == 1
    dup = g.assign(ev(fingerprint="fp1"), at(60))
    assert dup.is_duplicate and dup.group_id == first.group_id and dup.count == 1
    assert "duplicate" in dup.reason
    resolved = g.assign(ev(fingerprint="fp1", status=AlertStatus.RESOLVED), at(90))
    assert not resolved.is_duplicate and resolved.group_id == first.group_id
    assert "resolved" in resolved.reason
    # the thread's reader is told which alert, not its fingerprint (a hash)
    assert resolved.reason == "same alert 'HighLatency', now resolved"
    g.assign(ev(fingerprint="fp2", instance="db-01"), at(100))
    again = g.assign(ev(fingerprint="fp2", instance="db-01"), at(110))
    assert again.reason == ("duplicate: alert 'HighLatency' on db-01 is already in this group "
                            "(firing)")


def test_window_expiry_starts_new_group() -> None:
    g = AlertGrouper(window_seconds=300, id_factory=_ids())
    a = g.assign(ev(fingerprint="fp1", group_key="k"), at(0))
    b = g.assign(ev(fingerprint="fp1", group_key="k"), at(301))
    assert b.is_new_group and not b.is_duplicate and b.group_id != a.group_id
    # the window slides with each event
    c = g.assign(ev(fingerprint="fp2", group_key="k"), at(301 + 250))
    d = g.assign(ev(fingerprint="fp3", group_key="k"), at(301 + 500))
    assert c.group_id == d.group_id == b.group_id and d.count == 3


def test_dedup_window_shorter_than_group_window() -> None:
    g = AlertGrouper(600, GroupingRules(dedup_seconds=30), id_factory=_ids())
    a = g.assign(ev(fingerprint="fp1"), at(0))
    b = g.assign(ev(fingerprint="fp1"), at(100))
    assert not b.is_duplicate and b.group_id == a.group_id and b.count == 2


def test_group_key_then_labels_then_template() -> None:
    g = AlertGrouper(900, id_factory=_ids())
    a = g.assign(ev("PodCrash", fingerprint="1", group_key="gk1", pod="p1"), at(0))
    b = g.assign(ev("PodCrash", fingerprint="2", group_key="gk1", pod="p2"), at(1))
    assert b.group_id == a.group_id and "group key" in b.reason and b.count == 2

    c = g.assign(ev("HighLatency", fingerprint="3", service="checkout", cluster="eu"), at(2))
    d = g.assign(ev("HighLatency", fingerprint="4", service="checkout", cluster="eu"), at(3))
    e = g.assign(ev("HighLatency", fingerprint="5", service="search", cluster="eu"), at(4))
    assert c.is_new_group and d.group_id == c.group_id and "service=checkout" in d.reason
    assert e.group_id != c.group_id

    text = "[critical] DiskFull: disk {} on host-{} is {}% full"
    f = g.assign(ev("DiskFull", text.format("/dev/sda1", 7, 91), "6"), at(5))
    h = g.assign(ev("DiskFull", text.format("/dev/sdb2", 9, 97), "7"), at(6))
    assert f.is_new_group and h.group_id == f.group_id and "template" in h.reason
    # same template words but another alert: not grouped by template
    other = g.assign(ev("DiskSlow", text.format("/dev/sdb2", 9, 97), "8"), at(7))
    assert other.is_new_group


def test_state_round_trips_through_json() -> None:
    g = AlertGrouper(900, id_factory=_ids())
    a = g.assign(ev("DiskFull", "[critical] DiskFull: disk 91% full on host-7", "1"), at(0))
    g.assign(ev(fingerprint="x", group_key="gk"), at(1))
    state = json.loads(json.dumps(g.to_dict()))
    restored = AlertGrouper.from_dict(state, id_factory=_ids())
    b = restored.assign(ev("DiskFull", "[critical] DiskFull: disk 97% full on host-9", "2"), at(2))
    assert b.group_id == a.group_id and b.count == 2
    dup = restored.assign(ev(fingerprint="x", group_key="gk"), at(3))
    assert dup.is_duplicate


def test_prune_forgets_expired_groups() -> None:
    g = AlertGrouper(60, id_factory=_ids())
    for i in range(50):
        g.assign(ev(fingerprint=str(i), group_key=f"k{i}"), at(i))
    g.prune(at(10_000))
    assert g.to_dict()["groups"] == [] and g.to_dict()["fingerprints"] == {}


def test_template_miner_merges_variables_not_different_words() -> None:
    miner = TemplateMiner(similarity=0.5)
    a, new_a = miner.add("Connection to 10.0.0.1 timed out after 30s")
    b, new_b = miner.add("Connection to 10.0.0.2 timed out after 45s")
    c, new_c = miner.add("User alice logged in from workstation")
    assert new_a and not new_b and new_c and a is b and c is not a
    assert a.template == "Connection to <IP> timed out after <DUR>"
    restored = TemplateMiner.from_dict(json.loads(json.dumps(miner.to_dict())))
    assert restored.match("Connection to 10.9.9.9 timed out after 1s").cluster_id == a.cluster_id


def test_group_lines_offline() -> None:
    lines = [
        "Took 0.5 seconds to spawn the instance",
        "Took 1.25 seconds to spawn the instance",
        "Deleting instance files /var/lib/nova/instances/1a2b3c4d5e6f",
        "Took 12 seconds to spawn the instance",
        "Deleting instance files /var/lib/nova/instances/9f8e7d6c5b4a",
        "Terminating instance",
    ]
    ids = group_lines(lines)
    assert ids[0] == ids[1] == ids[3]
    assert ids[2] == ids[4]
    assert len({ids[0], ids[2], ids[5]}) == 3
    assert group_lines([]) == []


def test_a_notification_older_than_the_alerts_latest_is_a_duplicate() -> None:
    """Events are not always processed in the order they were received: the grouping
    leader takes its own alerts at once and the other replicas' a second later, and a
    replica's spool is stored after its outage. An older status must not undo a newer one."""
    g = AlertGrouper(window_seconds=300, id_factory=_ids())

    def received(seconds: float, status: AlertStatus) -> Event:
        return dataclasses.replace(ev(fingerprint="fp1", status=status), received_at=at(seconds))

    first = g.assign(received(0, AlertStatus.FIRING), at(0))
    resolved = g.assign(received(10, AlertStatus.RESOLVED), at(11))
    assert not resolved.is_duplicate and resolved.count == 2
    late = g.assign(received(5, AlertStatus.FIRING), at(12))  # received before the resolve
    assert late.is_duplicate and late.stale and late.group_id == first.group_id
    assert late.count == 2 and "older" in late.reason
    again = g.assign(received(10, AlertStatus.RESOLVED), at(13))  # the same resolve, twice
    assert again.is_duplicate and not again.stale
    refired = g.assign(received(20, AlertStatus.FIRING), at(20))
    assert not refired.is_duplicate and refired.count == 3

    # Rebuilt from stored events in id order (a take-over): the late firing, stored last,
    # does not make the alert firing again either.
    h = AlertGrouper(window_seconds=300, id_factory=_ids())
    h.restore(received(0, AlertStatus.FIRING), "g1", at(0))
    h.restore(received(10, AlertStatus.RESOLVED), "g1", at(11))
    h.restore(received(5, AlertStatus.FIRING), "g1", at(12))
    assert h.assign(received(30, AlertStatus.RESOLVED), at(30)).is_duplicate
