"""Grouping of alert storms (online) and of log lines (offline)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bot.events import Event
from bot.intake.fingerprint import alert_fingerprint
from bot.intake.templates import TemplateMiner, tokenize

INSTANCE_LABELS = ("instance", "pod", "host", "node")  # what tells one alert of a name apart


def group_lines(
    texts: Sequence[str], *, similarity: float = 0.5, depth: int = 4, max_children: int = 100
) -> list[int]:
    """Cluster ids, one per text: lines with one template share an id.

    Templates are mined online (masking + Drain tree, see :mod:`bot.intake.templates`);
    templates that end up identical after generalizing are merged. No per-dataset rules.
    """
    miner = TemplateMiner(similarity=similarity, depth=depth, max_children=max_children)
    token_lists = [tokenize(t) for t in texts]
    first = [miner.add_tokens(toks)[0].cluster_id for toks in token_lists]
    canonical: dict[str, int] = {}
    alias: dict[int, int] = {}
    for cid, cluster in miner.clusters.items():
        key = f"{len(cluster.tokens)}|{cluster.template}"
        alias[cid] = canonical.setdefault(key, cid)
    return [alias[c] for c in first]


# --- online grouping of alert storms ---------------------------------------------------


@dataclass(frozen=True)
class GroupingRules:
    """What puts two events in one group (checked in this order after deduplication).

    * ``by_group_key``: the same source group key (Alertmanager ``groupKey``);
    * ``topology_labels``: the same alert name and the same values of these labels
      (at least one of them must be present);
    * ``by_template``: the same mined message template and the same values (or absence)
      of the topology labels; with ``template_same_title`` the alert names (or titles)
      must match too, because templates of different alerts that differ by a few words
      would otherwise merge.
    """

    dedup_seconds: float | None = None  # None: the grouping window
    by_group_key: bool = True
    topology_labels: tuple[str, ...] = ("service", "cluster", "namespace")
    by_template: bool = True
    template_similarity: float = 0.6
    template_same_title: bool = True
    max_groups: int = 10_000
    max_templates: int = 20_000


@dataclass(frozen=True)
class GroupDecision:
    group_id: str
    is_new_group: bool
    is_duplicate: bool
    reason: str
    count: int  # events in the group (duplicates not counted)
    # A duplicate because it was received before the alert's latest notification already
    # grouped (its status, even if different, is out of date).
    stale: bool = False


@dataclass
class _Group:
    group_id: str
    created_at: float
    last_seen: float
    count: int = 1
    duplicates: int = 0
    title: str = ""


def _received(event: Event, default: float) -> float:
    """When ``event`` was received (seconds), or ``default`` when it does not say."""
    return to_timestamp(event.received_at) if event.received_at is not None else default


def to_timestamp(now: datetime | float | None) -> float:
    """Seconds since the epoch: of ``now`` (a stored time without a zone is UTC, as SQLite
    returns them), of a number as is, or of the current time for ``None``."""
    if now is None:
        return datetime.now(UTC).timestamp()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.timestamp()
    return float(now)


class AlertGrouper:
    """Online dedup + grouping of events inside a sliding window.

    A group stays open while events keep arriving: it expires ``window_seconds`` after
    its last event. Not thread-safe: call it from one worker (or under a lock). The state
    is a plain JSON-able dict (:meth:`to_dict` / :meth:`from_dict`).
    """

    def __init__(
        self,
        window_seconds: float = 900.0,
        rules: GroupingRules | None = None,
        *,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = float(window_seconds)
        self.rules = rules or GroupingRules()
        self._new_id = id_factory or (lambda: uuid.uuid4().hex[:16])
        self._groups: dict[str, _Group] = {}
        # fingerprint -> [group_id, status, last_seen, received]: ``received`` is when the
        # notification that set ``status`` was received (its event's received_at)
        self._fingerprints: dict[str, list[Any]] = {}
        # rule key -> group_id
        self._keys: dict[str, str] = {}
        self._miner = TemplateMiner(similarity=self.rules.template_similarity)
        self._next_prune = 0.0

    @property
    def dedup_seconds(self) -> float:
        d = self.rules.dedup_seconds
        return self.window_seconds if d is None else float(d)

    # --- public ---------------------------------------------------------------------
    def assign(self, event: Event, now: datetime | float | None = None) -> GroupDecision:
        """Decide the group of ``event`` arriving at ``now`` (default: the current time)."""
        t = to_timestamp(now)
        if t >= self._next_prune:
            self.prune(t)
        fp = alert_fingerprint(event)
        status = str(event.status)
        received = _received(event, t)

        seen = self._fingerprints.get(fp)
        if seen is not None:
            group = self._live_group(seen[0], t)
            if group is not None and t - seen[2] <= self.dedup_seconds:
                # Events are not always processed in the order they were received (another
                # replica's, a spool replayed): an older notification changes nothing.
                stale = received < seen[3]
                same_status = seen[1] == status
                seen[2] = t
                group.last_seen = t
                if same_status or stale:
                    group.duplicates += 1
                    seen[3] = max(seen[3], received)
                    name = _alert_name(event)
                    why = (f"duplicate: alert {name} received before its latest notification "
                           f"({seen[1]}), older" if stale and not same_status else
                           f"duplicate: alert {name} is already in this group ({status})")
                    return GroupDecision(
                        group.group_id, False, True, why, group.count,
                        stale=stale and not same_status,
                    )
                seen[1], seen[3] = status, received
                group.count += 1
                return GroupDecision(
                    group.group_id, False, False,
                    f"same alert {_alert_name(event)}, now {status}", group.count
                )

        keys = self._rule_keys(event)
        for key, reason in keys:
            gid = self._keys.get(key)
            group = self._live_group(gid, t) if gid else None
            if group is not None:
                group.count += 1
                group.last_seen = t
                self._remember(event, fp, status, group.group_id, keys, t, received)
                return GroupDecision(group.group_id, False, False, reason, group.count)

        group = _Group(self._new_id(), t, t, title=event.alertname or event.title)
        self._groups[group.group_id] = group
        self._remember(event, fp, status, group.group_id, keys, t, received)
        return GroupDecision(
            group.group_id,
            True,
            False,
            "new group: no open group with this fingerprint, group key, labels or template",
            group.count,
        )

    def restore(self, event: Event, group_id: str, now: datetime | float | None = None) -> None:
        """Record ``event`` as a member of ``group_id``, grouped at ``now``, without deciding.

        Rebuilds the state from stored decisions (a restart, or another replica taking over
        the grouping): the event's fingerprint, rule keys and template point at ``group_id``
        as they would after :meth:`assign`. Replay events in the order they were grouped."""
        t = to_timestamp(now)
        group = self._groups.get(group_id)
        if group is None:
            group = _Group(group_id, t, t, title=event.alertname or event.title)
            self._groups[group_id] = group
        else:
            group.count += 1
            group.last_seen = max(group.last_seen, t)
        keys = self._rule_keys(event)
        fp, received = alert_fingerprint(event), _received(event, t)
        status = str(event.status)
        seen = self._fingerprints.get(fp)
        if seen is not None and seen[0] == group_id and received < seen[3]:
            status, received = seen[1], seen[3]  # stored late, received earlier: stale
        self._remember(event, fp, status, group_id, keys, t, received)

    def is_open(self, group_id: str, now: datetime | float | None = None) -> bool:
        """True while ``group_id`` can still take events at ``now``; False once it has
        expired (``window_seconds`` after its last event) or was pruned (``max_groups``).
        Read-only: it does not prune."""
        return self._live_group(group_id, to_timestamp(now)) is not None

    def prune(self, now: datetime | float | None = None) -> None:
        """Forget expired groups, fingerprints, keys and (over the cap) templates."""
        t = to_timestamp(now)
        horizon = max(self.window_seconds, self.dedup_seconds)
        self._groups = {
            gid: g for gid, g in self._groups.items() if t - g.last_seen <= self.window_seconds
        }
        self._fingerprints = {
            fp: v
            for fp, v in self._fingerprints.items()
            if v[0] in self._groups and t - v[2] <= horizon
        }
        self._keys = {k: gid for k, gid in self._keys.items() if gid in self._groups}
        if len(self._groups) > self.rules.max_groups:
            keep = sorted(self._groups.values(), key=lambda g: g.last_seen)[
                -self.rules.max_groups :
            ]
            self._groups = {g.group_id: g for g in keep}
            self._keys = {k: gid for k, gid in self._keys.items() if gid in self._groups}
        if len(self._miner.clusters) > self.rules.max_templates:
            used = {int(k.rsplit("|", 1)[1]) for k in self._keys if k.startswith("tpl:")}
            self._miner.remove([cid for cid in self._miner.clusters if cid not in used])
        self._next_prune = t + min(60.0, self.window_seconds / 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "window_seconds": self.window_seconds,
            "rules": {**asdict(self.rules), "topology_labels": list(self.rules.topology_labels)},
            "groups": [asdict(g) for g in self._groups.values()],
            "fingerprints": {fp: list(v) for fp, v in self._fingerprints.items()},
            "keys": dict(self._keys),
            "templates": self._miner.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, id_factory: Callable[[], str] | None = None
    ) -> AlertGrouper:
        rules_data = dict(data.get("rules", {}))
        if "topology_labels" in rules_data:
            rules_data["topology_labels"] = tuple(rules_data["topology_labels"])
        grouper = cls(
            float(data["window_seconds"]), GroupingRules(**rules_data), id_factory=id_factory
        )
        for g in data.get("groups", []):
            grouper._groups[str(g["group_id"])] = _Group(**g)
        grouper._fingerprints = {
            str(fp): [str(v[0]), str(v[1]), float(v[2]), float(v[3] if len(v) > 3 else v[2])]
            for fp, v in data.get("fingerprints", {}).items()
        }
        grouper._keys = {str(k): str(v) for k, v in data.get("keys", {}).items()}
        if "templates" in data:
            grouper._miner = TemplateMiner.from_dict(data["templates"])
        return grouper

    # --- internals ------------------------------------------------------------------
    def _live_group(self, gid: str | None, t: float) -> _Group | None:
        group = self._groups.get(gid) if gid else None
        if group is None or t - group.last_seen > self.window_seconds:
            return None
        return group

    def _rule_keys(self, event: Event) -> list[tuple[str, str]]:
        rules = self.rules
        keys: list[tuple[str, str]] = []
        if rules.by_group_key and event.group_key:
            keys.append((f"gk:{event.group_key}", f"same alert group key {event.group_key!r}"))
        name = event.alertname or event.title
        topo = [(k, event.labels[k]) for k in rules.topology_labels if event.labels.get(k)]
        if name and topo:
            shown = ", ".join(f"{k}={v}" for k, v in topo)
            keys.append((f"topo:{name}|{shown}", f"same alert name {name!r} and labels {shown}"))
        if rules.by_template and event.text.strip():
            scope = self._template_scope(event)
            cluster = self._miner.match(event.text)
            if cluster is not None:
                keys.append(
                    (
                        f"tpl:{scope}|{cluster.cluster_id}",
                        f"same message template {cluster.template[:200]!r}",
                    )
                )
        return keys

    def _template_scope(self, event: Event) -> str:
        """Templates group only events of one alert name and one service/cluster/namespace."""
        name = (event.alertname or event.title) if self.rules.template_same_title else ""
        topo = ",".join(f"{k}={event.labels.get(k, '')}" for k in self.rules.topology_labels)
        return f"{name}|{topo}"

    def _remember(
        self,
        event: Event,
        fp: str,
        status: str,
        gid: str,
        keys: list[tuple[str, str]],
        t: float,
        received: float,
    ) -> None:
        self._fingerprints[fp] = [gid, status, t, received]
        for key, _ in keys:
            if self._live_group(self._keys.get(key), t) is None:
                self._keys[key] = gid
        if self.rules.by_template and event.text.strip():
            cluster, _ = self._miner.add(event.text)
            scope = self._template_scope(event)
            key = f"tpl:{scope}|{cluster.cluster_id}"
            if self._live_group(self._keys.get(key), t) is None:
                self._keys[key] = gid


def _alert_name(event: Event) -> str:
    """An alert as the thread's reader knows it ("'DiskFull' on db-01"), not by its
    fingerprint, a hash nobody can look up."""
    name = repr(event.alertname or event.title[:80] or "alert")
    where = next((event.labels[k] for k in INSTANCE_LABELS if event.labels.get(k)), "")
    return f"{name} on {where[:80]}" if where else name
