"""`triagebot eval feedback`: does relevance feedback help the queries it was given on,
without hurting the others?

The corpus is indexed through the normal ingestion path. Every query is searched once; on
every other query (half A) a simulated on-call engineer clicks on the answer exactly as in
Slack: "helpful" when the first runbook is the right one, else "not helpful - wrong runbook".
The clicks are stored as feedback rows against stored answers. Then every query is asked
again: half A measures the gain on repeated queries, half B (no feedback) must not lose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.evaluation import rank_report, retrieval_queries, runbook_rank, temporary_services
from bot.store import repository as repo
from bot.store.db import session_scope


def _ranks(services: Any, queries: list[dict[str, Any]],
           texts: list[str]) -> list[tuple[Any, list]]:
    return [runbook_rank(services, text, q["gold"])
            for q, text in zip(queries, texts, strict=True)]


def evaluate_feedback(corpus: Path, queries_file: Path, *, field: str = "text") -> dict[str, Any]:
    from knowledge.documents import scan_folder

    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus}")
    # the queries as `eval retrieval` reads them: other field names, gold paths resolved
    checked = retrieval_queries(corpus, queries_file, field, scan_folder(corpus))
    queries = [{**q, "gold": g} for q, g in zip(checked.queries, checked.golds, strict=True)]
    if len(queries) < 2:
        raise ValueError(f"{queries_file}: need at least 2 queries with a gold document")
    texts = checked.texts
    with temporary_services() as services:
        services.knowledge.index_runbooks(corpus, source="eval")
        before = _ranks(services, queries, texts)
        clicks = {"helpful": 0, "not_helpful": 0}
        with session_scope(services.sessions) as session:
            for i, (text, (rank, hits)) in enumerate(zip(texts, before, strict=True)):
                if i % 2 or not hits:
                    continue
                top = hits[0].best
                answer = repo.record_answer(
                    session=session,
                    surface="eval",
                    query=text,
                    answer={
                        "runbooks": [
                            {"source": top.source, "document_path": top.doc_key.split(":", 1)[-1]}
                        ],
                        "similar": [],
                    },
                )
                helpful = rank == 1
                repo.record_feedback(
                    session=session,
                    answer_id=answer.id,
                    kind="helpful" if helpful else "not_helpful",
                    reason="" if helpful else "wrong_runbook",
                    user_id="eval",
                )
                clicks["helpful" if helpful else "not_helpful"] += 1
        services.knowledge.relevance.refresh(force=True)
        after = _ranks(services, queries, texts)
    half_a = [i for i in range(len(queries)) if i % 2 == 0]
    half_b = [i for i in range(len(queries)) if i % 2 == 1]

    def report(indexes: list[int], ranks: list) -> dict[str, Any]:
        return rank_report([ranks[i][0] for i in indexes])

    return {
        "field": field,
        "clicks": clicks,
        "with_feedback": {"before": report(half_a, before), "after": report(half_a, after)},
        "without_feedback": {"before": report(half_b, before), "after": report(half_b, after)},
        **checked.notes,
    }
