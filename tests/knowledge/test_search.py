from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge.documents import scan_folder
from knowledge.search import (
    FusionWeights,
    HybridIndex,
    IndexCorruptError,
    IndexMismatchError,
    Passage,
    passage_text_for_embedding,
    passages_from_document,
)
from knowledge.text import name_key

RUNBOOKS = {
    "db/PostgresReplicationLag.md": """---
title: Postgres Replication Lag
alerts: [PostgresReplicationLag]
service: postgres
---
## Meaning
The replica is behind the primary; WAL replay on the standby is slow or stopped.
## Mitigation
1. Check `pg_stat_replication` on the primary.
2. Restart the WAL receiver if it is stuck.
""",
    "infra/DiskFull.md": """# Disk Full
## Meaning
A filesystem on the host is almost out of free space; writes will fail soon.
## Mitigation
- Remove old log files and docker images.
- Extend the volume.
""",
    "infra/HighCpu.md": """# High CPU
## Meaning
CPU usage of the host has been above 90 percent for ten minutes, requests get slow.
## Mitigation
Find the busy process with top and scale out the service.
""",
    "net/VpnDown.md": """---
visibility: internal
---
# VPN Down
## Meaning
Remote users cannot connect to the corporate VPN gateway; tunnels fail to establish.
""",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("runbooks")
    for rel, text in RUNBOOKS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    passages: list[Passage] = []
    for doc in scan_folder(root).documents:
        passages += passages_from_document(doc, 100 + len(passages))
    vectors = embedder.encode([passage_text_for_embedding(p) for p in passages])
    return passages, vectors


@pytest.fixture()
def index(corpus, embedder) -> HybridIndex:
    passages, vectors = corpus
    idx = HybridIndex(embedder.model_name, embedder.dim)
    idx.upsert(passages, vectors)
    return idx


def ask(idx: HybridIndex, embedder, text: str, **kw):
    return idx.search(text, embedder.encode_one(text), **kw)


def test_embedding_text_has_title_and_heading(corpus) -> None:
    passages, vectors = corpus
    p = next(p for p in passages if p.doc_key == "infra/DiskFull.md" and p.section == "Mitigation")
    text = passage_text_for_embedding(p)
    assert text.startswith("Disk Full > Mitigation")
    assert vectors.shape == (len(passages), 384) and vectors.dtype == np.float32


@pytest.mark.parametrize(("query", "gold"), [
    ("standby is lagging behind the primary database", "db/PostgresReplicationLag.md"),
    ("no space left on device /var", "infra/DiskFull.md"),
    ("processor load very high, slow responses", "infra/HighCpu.md"),
    ("[critical] PostgresReplicationLag firing", "db/PostgresReplicationLag.md"),
])
def test_finds_right_document(index, embedder, query: str, gold: str) -> None:
    hits = ask(index, embedder, query, k=3)
    assert hits[0].doc_key == gold
    assert len({h.doc_key for h in hits}) == len(hits)  # one hit per document


def test_exact_name_and_reasons(index, embedder) -> None:
    top = ask(index, embedder, "PostgresReplicationLag", k=1)[0]
    assert "exact name match (PostgresReplicationLag)" in top.reasons  # as written, not folded
    best_section = ask(index, embedder, "how to fix: restart the WAL receiver", k=1)[0]
    assert best_section.best.section == "Mitigation"
    assert any(r.startswith("keywords:") and "wal" in r for r in best_section.reasons)


@pytest.mark.parametrize("query", [
    "how to fix: restart the WAL receiver",
    "[critical] PostgresReplicationLag firing",
    "no space left on device /var",
])
def test_explain_false_same_ranking_without_keywords(index, embedder, query: str) -> None:
    vector = embedder.encode_one(query)
    full = index.search(query, vector, k=4, names=["PostgresReplicationLag"])
    lean = index.search(query, vector, k=4, names=["PostgresReplicationLag"], explain=False)
    assert any(r.startswith("keywords:") for h in full for r in h.reasons)  # not vacuous
    assert [(h.doc_key, h.best.id, h.score, h.dense, h.lexical) for h in lean] == [
        (h.doc_key, h.best.id, h.score, h.dense, h.lexical) for h in full]
    assert all(not r.startswith("keywords") for h in lean for r in h.reasons)
    # the other reasons are untouched
    assert [h.reasons for h in lean] == [
        tuple(r for r in h.reasons if not r.startswith("keywords")) for h in full]


def test_filters(index, embedder) -> None:
    hits = ask(index, embedder, "VPN tunnel cannot connect", k=4)
    assert hits[0].doc_key == "net/VpnDown.md"
    public = ask(index, embedder, "VPN tunnel cannot connect", k=4, visibility={"public"})
    assert "net/VpnDown.md" not in {h.doc_key for h in public}
    by_callable = ask(index, embedder, "VPN", k=4, visibility=lambda v: v == "internal")
    assert {h.doc_key for h in by_callable} == {"net/VpnDown.md"}
    only_pg = ask(index, embedder, "disk", k=4, services=["postgres"])
    assert {h.doc_key for h in only_pg} == {"db/PostgresReplicationLag.md"}
    assert ask(index, embedder, "disk", k=4, kinds=["incident"]) == []


def test_upsert_remove_version(index, embedder, corpus) -> None:
    v0 = index.version
    new = Passage(id=999, doc_key="incident:42", kind="incident", title="Kafka consumer lag",
                  section="", text="Consumers of topic orders fell behind after a rebalance.")
    index.upsert([new], embedder.encode([passage_text_for_embedding(new)]))
    assert index.version != v0
    assert ask(index, embedder, "kafka consumer group lagging", k=1)[0].doc_key == "incident:42"
    assert index.remove([999]) == 1
    assert index.version == v0
    removed = index.remove_documents(["infra/DiskFull.md"])
    assert removed == 2
    assert "infra/DiskFull.md" not in {h.doc_key for h in ask(index, embedder, "disk", k=5)}
    with pytest.raises(IndexMismatchError):
        index.upsert([new], np.zeros((1, 10), np.float32))
    with pytest.raises(IndexMismatchError):
        index.search("x", np.zeros(10, np.float32))


def test_save_load_roundtrip(index, embedder, tmp_path: Path) -> None:
    index.save(tmp_path)
    back = HybridIndex.load(tmp_path, model_name=embedder.model_name, dim=384)
    assert back.version == index.version and back.size == index.size
    q = "no space left on device"
    expected = [h.doc_key for h in ask(index, embedder, q)]
    assert [h.doc_key for h in ask(back, embedder, q)] == expected
    with pytest.raises(IndexMismatchError):
        HybridIndex.load(tmp_path, model_name="another-model")
    (p,) = tmp_path.glob("gen-*/passages.jsonl")
    p.write_text(p.read_text().splitlines()[0] + "\n")
    with pytest.raises(IndexCorruptError):
        HybridIndex.load(tmp_path)


def test_empty_index(embedder) -> None:
    idx = HybridIndex("m", 384)
    assert idx.search("anything", np.zeros(384, np.float32)) == []
    assert idx.size == 0 and isinstance(idx.version, str)


@pytest.mark.parametrize(("query", "left_out"), [
    ("[critical] PostgresReplicationLag firing", "db/PostgresReplicationLag.md"),  # exact name
    ("no space left on device /var", "infra/DiskFull.md"),
    ("VPN tunnel cannot connect", "net/VpnDown.md"),
])
def test_exclude_leaves_the_document_out(
    index, embedder, corpus, query: str, left_out: str
) -> None:
    everything = {p.doc_key for p in corpus[0]}
    assert ask(index, embedder, query, k=4)[0].doc_key == left_out  # found when not excluded
    hits = ask(index, embedder, query, k=4, exclude=[left_out])
    assert left_out not in {h.doc_key for h in hits}
    assert {h.doc_key for h in hits} <= everything - {left_out} and len(hits) >= 1
    assert all(h.best.doc_key != left_out for h in hits)
    # more than 8 keys (the other lookup path), unknown keys ignored, a generator accepted
    many = [left_out, *(f"nope/{i}.md" for i in range(10))]
    hits = ask(index, embedder, query, k=4, exclude=iter(many))
    assert hits and left_out not in {h.doc_key for h in hits}
    # leave-one-out composes with the filters
    hits = ask(index, embedder, query, k=4, exclude=[left_out], visibility={"public"})
    assert left_out not in {h.doc_key for h in hits}
    keys, _ = index.candidate_features(query, embedder.encode_one(query), k=4, exclude=[left_out])
    assert left_out not in keys
    assert ask(index, embedder, query, k=4, exclude=sorted(everything)) == []


def test_a_document_the_caller_names_is_a_candidate_even_if_nothing_else_finds_it(
    corpus, embedder
) -> None:
    """With few candidates per signal (a large corpus), a runbook that shares no word and
    little meaning with the query was never scored, so naming it (the alert's runbook_url)
    did nothing. A named document is now a candidate, and the name match ranks it first."""
    passages, vectors = corpus
    idx = HybridIndex(embedder.model_name, embedder.dim, dense_candidates=1)
    idx.upsert(passages, vectors)
    # more VPN notes than the 10 candidates each signal proposes for k=1
    notes = [Passage(id=900 + i, doc_key=f"notes/vpn-{i}.md", kind="runbook",
                     title=f"VPN note {i}", section="",
                     text=f"Remote users cannot connect to VPN gateway {i}; tunnels fail.")
             for i in range(15)]
    idx.upsert(notes, embedder.encode([passage_text_for_embedding(p) for p in notes]))
    query = "remote users cannot connect to the vpn gateway"
    assert all(h.doc_key != "infra/HighCpu.md" for h in ask(idx, embedder, query, k=1))
    (top,) = ask(idx, embedder, query, k=1, names=["highcpu"])
    assert top.doc_key.endswith("infra/HighCpu.md"), top.doc_key


@pytest.mark.parametrize(("title", "declared", "key"), [
    ("vpn", False, ""),  # one word: a topic many tickets share, not a name
    ("#NAME?", False, ""),  # a spreadsheet error exported as a title
    ("Outlook", False, ""),
    ("vpn安装-转贺正平", False, ""),  # normalizing keeps 3 of its 9 letters
    ("vpn 不能连接", False, ""),
    ("vpn 不能连接", True, ""),  # even as a declared name
    ("Disk Full", False, "diskfull"),
    ("MySQL down", False, "mysqldown"),  # 'down' is a stopword, but not every word is one
    ("to be", False, ""),
    ("Kube Pod Crash Looping", False, "kubepodcrashlooping"),
    ("KubePodCrashLooping", False, "kubepodcrashlooping"),
    ("Watchdog", True, "watchdog"),  # an alert's or a runbook file's name counts as one word
    ("vpn", True, "vpn"),
])
def test_name_key(title: str, declared: bool, key: str) -> None:
    assert name_key(title, declared=declared) == key


def incident(i: int, title: str, text: str, names: tuple[str, ...] = ()) -> Passage:
    return Passage(id=i, doc_key=f"ticket:{i}", kind="ticket", title=title, section="",
                   text=text, names=names)


def test_a_degenerate_title_is_no_name_match(embedder) -> None:
    """Audit on real ITSM tickets: tickets titled 'vpn', '#NAME?' or in Chinese ('vpn 不能连接',
    which normalizes to 'vpn') got the exact-name boost from any query with the word 'vpn' or
    'name' and outranked the English tickets about the same failure. They no longer do; a real
    name (an alert's name on a past incident, a runbook file name the caller names) still does."""
    tickets = [
        incident(1, "vpn", "vpn"),
        incident(2, "#NAME?", "#NAME? name: jdoe"),
        incident(3, "vpn 不能连接", "vpn 不能连接, 请帮忙"),
        incident(4, "vpn安装-转贺正平", "vpn安装"),
        incident(5, "unable to login to company vpn",
                 "vpn login fails from home: authentication failed for my account"),
        incident(6, "Pods restarting in prod", "payments pods restart every few minutes",
                 names=("KubePodCrashLooping",)),
        incident(7, "Watchdog", "the always-firing watchdog alert stopped arriving",
                 names=("Watchdog",)),
    ]
    # the incident index's fusion (bot/knowledge_base.py INCIDENT_WEIGHTS, INCIDENT_FUSION)
    weights = FusionWeights(dense_sec=0.6, dense_doc=0.0, lex_sec=0.0, lex_doc=0.2, name=0.3,
                            title=0.1, title_min_coverage=0.0)
    idx = HybridIndex(embedder.model_name, embedder.dim, weights=weights, fusion="linear")
    idx.upsert(tickets, embedder.encode([passage_text_for_embedding(p) for p in tickets]))
    query = "cannot login to VPN from home, says authentication failed. name: asmith"
    hits = ask(idx, embedder, query, k=7)
    named = {h.doc_key for h in hits if h.named}
    assert named == set(), [(h.doc_key, h.reasons) for h in hits]
    assert not any(r.startswith("exact name match") for h in hits for r in h.reasons)
    assert hits[0].doc_key == "ticket:5"
    # real names still match, from the text and from the caller
    (top,) = ask(idx, embedder, "KubePodCrashLooping firing for payments", k=1)
    assert top.doc_key == "ticket:6" and top.named
    assert "exact name match (KubePodCrashLooping)" in top.reasons
    (top,) = ask(idx, embedder, "no heartbeat from alertmanager", k=1, names=["Watchdog"])
    assert top.doc_key == "ticket:7" and top.named


def test_a_one_word_runbook_file_name_still_names_it(corpus, embedder) -> None:
    """A runbook's file name is its name by its author's word, even one word (vpn.md): the
    alert's runbook_url naming it still ranks it first."""
    passages, vectors = corpus
    idx = HybridIndex(embedder.model_name, embedder.dim)
    idx.upsert(passages, vectors)
    vpn = Passage(id=950, doc_key="net/vpn.md", kind="runbook", title="vpn", section="",
                  text="Restart the tunnel daemon.", names=("vpn",))
    idx.upsert([vpn], embedder.encode([passage_text_for_embedding(vpn)]))
    query = "Remote users cannot connect to the corporate VPN gateway"
    (top,) = ask(idx, embedder, query, k=1, names=["vpn"])
    assert top.doc_key == "net/vpn.md" and top.named
