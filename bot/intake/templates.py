"""A Drain-style online template miner (fixed-depth prefix tree + similarity threshold).

After He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree" (ICWS 2017),
written here instead of wrapping drain3 (which pins old jsonpickle/cachetools). Differences:

* messages are masked first (:func:`bot.intake.fingerprint.mask_variables`), so numbers,
  ids, addresses and times are typed placeholders, never template words;
* a lookup follows both the exact-token and the wildcard branch of the tree, so a template
  created under a variable first word is still found;
* the state is a plain dict (:meth:`TemplateMiner.to_dict`) and can be restored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.intake.fingerprint import mask_variables

WILDCARD = "<*>"


@dataclass
class TemplateCluster:
    """One template: its tokens (``<*>`` where members differ) and how many lines joined."""

    cluster_id: int
    tokens: list[str]
    size: int = 1

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


class _Node:
    __slots__ = ("children", "clusters")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.clusters: list[int] = []


def _is_variable(token: str) -> bool:
    if token.startswith("<") and token.endswith(">"):
        return True
    return any(ch.isdigit() for ch in token)


def tokenize(text: str, *, max_tokens: int = 256) -> list[str]:
    """Masked, whitespace-split tokens of ``text`` (at most ``max_tokens``)."""
    return mask_variables(text).split()[:max_tokens]


class TemplateMiner:
    """Online template mining.

    ``similarity`` is the share of a line's positions that must equal the template's
    (wildcards do not count) to join it; ``depth`` counts the root and the length layer,
    as in Drain, so ``depth=4`` routes on the first two tokens.
    """

    def __init__(
        self,
        *,
        similarity: float = 0.5,
        depth: int = 4,
        max_children: int = 100,
        max_tokens: int = 256,
    ) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError("similarity must be in (0, 1]")
        if depth < 3:
            raise ValueError("depth must be at least 3")
        self.similarity = similarity
        self.depth = depth
        self.max_children = max_children
        self.max_tokens = max_tokens
        self.clusters: dict[int, TemplateCluster] = {}
        self._root = _Node()
        self._next_id = 1

    # --- tree ---------------------------------------------------------------------------
    def _prefix(self, tokens: list[str]) -> list[str]:
        keys = [str(len(tokens))]
        for tok in tokens[: self.depth - 2]:
            keys.append(WILDCARD if _is_variable(tok) else tok)
        return keys

    def _leaves(self, tokens: list[str]) -> list[_Node]:
        nodes = [self._root]
        for i, key in enumerate(self._prefix(tokens)):
            nxt: list[_Node] = []
            for node in nodes:
                child = node.children.get(key)
                if child is not None:
                    nxt.append(child)
                if i > 0 and key != WILDCARD:
                    wild = node.children.get(WILDCARD)
                    if wild is not None:
                        nxt.append(wild)
            nodes = nxt
            if not nodes:
                break
        return nodes

    def _insert(self, cluster: TemplateCluster) -> None:
        node = self._root
        for i, key in enumerate(self._prefix(cluster.tokens)):
            child = node.children.get(key)
            if child is None:
                if i > 0 and len(node.children) >= self.max_children:
                    key = WILDCARD
                    child = node.children.get(key)
                if child is None:
                    child = node.children[key] = _Node()
            node = child
        node.clusters.append(cluster.cluster_id)

    # --- matching -----------------------------------------------------------------------
    @staticmethod
    def _score(template: list[str], tokens: list[str]) -> tuple[float, int]:
        equal = params = 0
        for a, b in zip(template, tokens, strict=True):
            if a == WILDCARD:
                params += 1
            elif a == b:
                equal += 1
        n = len(tokens)
        return (equal / n if n else 1.0), params

    def _best(self, tokens: list[str]) -> tuple[TemplateCluster | None, float]:
        best: TemplateCluster | None = None
        best_key = (-1.0, -1)
        for leaf in self._leaves(tokens):
            for cid in leaf.clusters:
                cluster = self.clusters[cid]
                key = self._score(cluster.tokens, tokens)
                if key > best_key:
                    best, best_key = cluster, key
        return best, best_key[0]

    def match(self, text: str) -> TemplateCluster | None:
        """The template ``text`` would join, without changing any state."""
        tokens = tokenize(text, max_tokens=self.max_tokens)
        best, sim = self._best(tokens)
        return best if best is not None and sim >= self.similarity else None

    def add(self, text: str) -> tuple[TemplateCluster, bool]:
        """Add one line; returns its template and whether that template is new."""
        return self.add_tokens(tokenize(text, max_tokens=self.max_tokens))

    def add_tokens(self, tokens: list[str]) -> tuple[TemplateCluster, bool]:
        best, sim = self._best(tokens)
        if best is not None and sim >= self.similarity:
            pairs = zip(best.tokens, tokens, strict=True)
            best.tokens = [a if a == b else WILDCARD for a, b in pairs]
            best.size += 1
            return best, False
        cluster = TemplateCluster(self._next_id, list(tokens))
        self._next_id += 1
        self.clusters[cluster.cluster_id] = cluster
        self._insert(cluster)
        return cluster, True

    # --- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "similarity": self.similarity,
            "depth": self.depth,
            "max_children": self.max_children,
            "max_tokens": self.max_tokens,
            "next_id": self._next_id,
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.tokens), "size": c.size}
                for c in self.clusters.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateMiner:
        miner = cls(
            similarity=float(data["similarity"]),
            depth=int(data["depth"]),
            max_children=int(data["max_children"]),
            max_tokens=int(data["max_tokens"]),
        )
        for item in data["clusters"]:
            tokens = [str(t) for t in item["tokens"]]
            cluster = TemplateCluster(int(item["id"]), tokens, int(item["size"]))
            miner.clusters[cluster.cluster_id] = cluster
            miner._insert(cluster)
        miner._next_id = max([int(data["next_id"]), *(c + 1 for c in miner.clusters)])
        return miner

    def remove(self, cluster_ids: Iterable[int]) -> None:
        """Forget templates (e.g. expired ones) and rebuild the tree."""
        for cid in cluster_ids:
            self.clusters.pop(cid, None)
        self._root = _Node()
        for cluster in self.clusters.values():
            self._insert(cluster)
