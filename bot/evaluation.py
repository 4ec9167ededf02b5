"""`triagebot eval ...`: quality figures measured through the product's own code paths,
each next to a plain baseline measured in the same run."""

from __future__ import annotations

import copy
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from classifiers.labels import label_spellings


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


class JsonlRows(list[dict[str, Any]]):
    """The objects of a JSONL file. Lines that are not JSON, or not a JSON object, are
    skipped and counted (``skipped``; ``first_skipped`` says where and why): one broken line
    must not void an evaluation set, nor pass unnoticed."""

    skipped: int = 0
    first_skipped: str = ""

    def report(self) -> dict[str, Any]:
        return skipped_fields(self.skipped, self.first_skipped)


def skipped_fields(count: int, first: str) -> dict[str, Any]:
    """``rows_skipped``, and ``first_skipped`` ("file: line N: why") when any, as every
    evaluation report gives them."""
    return {"rows_skipped": count, **({"first_skipped": first} if count else {})}


def read_jsonl(path: Path) -> JsonlRows:
    """The objects of a row file: JSONL, a JSON array, CSV or TSV, gzip-compressed or not,
    read as :func:`knowledge.records.read_rows` reads them (unreadable rows counted)."""
    from knowledge.records import read_rows

    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    rows = JsonlRows()
    for number, row in read_rows(path)[1]:
        if isinstance(row, dict):
            rows.append(row)
            continue
        if not rows.skipped:
            rows.first_skipped = f"{path.name}: line {number}: {row}"
        rows.skipped += 1
    return rows


@contextmanager
def temporary_services(base: Settings | None = None) -> Iterator[Any]:
    """Services on a throw-away data folder and SQLite database (same code as production)."""
    from bot.app import build_services

    with tempfile.TemporaryDirectory(prefix="triagebot-eval-") as tmp:
        settings = (base or Settings()).model_copy(
            update={"data_dir": Path(tmp), "database_url": f"sqlite:///{tmp}/eval.db"}
        )
        services = build_services(settings)
        try:
            yield services
        finally:
            services.close()


# --- retrieval --------------------------------------------------------------------------------


# What query files call a query's text and its expected runbook, besides the README's
# ``text`` and ``gold`` (compared after normalizing, as record columns are).
QUERY_TEXT_KEYS = ("text", "query", "question", "alert_text", "message", "prompt", "input")
GOLD_KEYS = ("gold", "expected", "expected_runbook", "expected_doc", "expected_document",
             "runbook", "runbooks", "relevant", "relevant_docs", "gold_path", "gold_doc",
             "answer", "doc", "document", "path", "file")


def _key(query: dict[str, Any], names: Sequence[str]) -> str | None:
    """The first key of ``query`` that one of ``names`` names, spelled as they are or not."""
    from knowledge.records import _norm

    by_norm = {_norm(k): k for k in query}
    return next((by_norm[n] for n in names if n in by_norm), None)


def _alert_text(alert: Any, with_name: bool) -> str:
    """A firing alert object ({labels, annotations}) as a query text, as the README's
    ``text`` (``[severity] AlertName: summary description``) or ``text_without_name``."""
    if not isinstance(alert, dict):
        return ""
    labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
    notes = alert.get("annotations") if isinstance(alert.get("annotations"), dict) else {}
    body = " ".join(str(notes[k]).strip() for k in ("summary", "description", "message")
                    if notes.get(k))
    if not with_name:
        return body
    head = " ".join(x for x in (f"[{labels['severity']}]" if labels.get("severity") else "",
                                f"{labels['alertname']}:" if labels.get("alertname") else "")
                    if x)
    return f"{head} {body}".strip()


def query_texts(queries: Sequence[dict[str, Any]], field: str, path: Path) -> list[str]:
    """The ``field`` text of every query (``text`` where a query lacks it).

    Without a ``text`` field anywhere, the default ``text`` (and ``text_without_name``) is
    also found under another usual name (``query``, ``question``...) or made from the
    query's ``alert`` object. A field no query has is a typo, not a request for the
    ``text`` figures: it raises.
    """
    if any(q.get(field) for q in queries):
        return [str(q.get(field) or q.get("text") or "") for q in queries]
    if field in ("text", "text_without_name"):
        if field == "text" and (key := next(
                (k for q in queries if (k := _key(q, QUERY_TEXT_KEYS)) and q.get(k)), None)):
            return [str(q.get(key) or "") for q in queries]
        if any(isinstance(q.get("alert"), dict) for q in queries):
            return [_alert_text(q.get("alert"), field == "text") for q in queries]
    keys = sorted({k for q in queries for k in q})
    raise ValueError(f"{path}: no query has the field {field!r} (keys: {', '.join(keys)}); "
                     "name the query text's key with --field")


def _golds(value: Any) -> list[str]:
    """The expected runbook paths of a query's gold value (a path or a list of paths)."""
    if isinstance(value, (list, tuple)):
        return [g for v in value for g in _golds(v)]
    if isinstance(value, dict):  # {"path": ...} or {"gold": ...}
        key = _key(value, GOLD_KEYS)
        return _golds(value[key]) if key else []
    return [str(value).strip()] if value not in (None, "") else []


def resolve_gold(gold: str, corpus: Path, paths: Sequence[str]) -> str | None:
    """The corpus path (relative, as the index keeps it) that ``gold`` names: the same path,
    or written with backslashes, ``./``, the corpus folder's name or an absolute path in
    front, or without the folders or the extension when that names one file only."""
    known = set(paths)
    g = gold.replace("\\", "/").strip()
    candidates = [g, g.removeprefix("./"), g.lstrip("/")]
    if Path(g).is_absolute():
        with suppress(ValueError, OSError):
            candidates.append(Path(g).resolve().relative_to(corpus.resolve()).as_posix())
    for prefix in (corpus.name + "/", "corpus/"):
        candidates += [c.removeprefix(prefix) for c in candidates]
    found = next((c for c in candidates if c in known), None)
    if found is not None:
        return found

    def name(p: str) -> str:
        return p.rsplit("/", 1)[-1]

    def bare(p: str) -> str:  # without the extension
        return p.rsplit(".", 1)[0] if "." in name(p) else p

    for key in (name, bare, lambda p: bare(name(p))):
        matches = [p for p in paths if key(p) == key(g)]
        if len(matches) == 1:
            return matches[0]
    return None


@dataclass(frozen=True)
class RetrievalQueries:
    """The queries of a retrieval set that can be measured, their texts and expected corpus
    paths, and what was left out and why."""

    queries: list[dict[str, Any]]
    texts: list[str]
    golds: list[list[str]]  # corpus paths; a hit on any of them counts
    notes: dict[str, Any]


def retrieval_queries(corpus: Path, queries_file: Path, field: str,
                      scan: Any) -> RetrievalQueries:
    """Read and check a query file against the scanned corpus: queries without an expected
    runbook, or whose runbook is not a document of the corpus, are left out of the figures
    and counted (a query that cannot be answered says nothing of the search)."""
    queries = read_jsonl(queries_file)
    if not queries:
        raise ValueError(f"{queries_file}: no queries")
    texts = query_texts(queries, field, queries_file)
    paths = [d.path for d in scan.documents]
    if not paths:
        skipped = "; ".join(f"{p} ({why})" for p, why in scan.skipped[:3])
        raise ValueError(f"corpus {corpus}: no runbook to search (Markdown, HTML or .txt "
                         "files expected)" + (f"; skipped: {skipped}" if skipped else ""))
    skipped_files = dict(scan.skipped)
    kept, kept_texts, golds = [], [], []
    no_gold, missing, missing_examples = 0, 0, []
    for q, text in zip(queries, texts, strict=True):
        key = _key(q, GOLD_KEYS)
        wanted = _golds(q.get(key)) if key else []
        if not wanted or not text.strip():
            no_gold += 1
            continue
        found = [r for g in wanted if (r := resolve_gold(g, corpus, paths))]
        if not found:
            missing += 1
            if len(missing_examples) < 3:
                why = skipped_files.get(wanted[0])
                missing_examples.append(wanted[0] + (f" (skipped: {why})" if why else ""))
            continue
        kept.append(q)
        kept_texts.append(text)
        golds.append(found)
    notes: dict[str, Any] = {"queries_without_gold": no_gold, "gold_not_in_corpus": missing}
    warnings = []
    if no_gold:
        warnings.append(f"{no_gold} queries have no text or no expected runbook (gold): left "
                        "out of the figures")
    if missing:
        notes["gold_not_in_corpus_examples"] = missing_examples
        warnings.append(f"{missing} queries expect a runbook that is not a document of the "
                        f"corpus, e.g. {', '.join(missing_examples)}: left out of the figures "
                        "(gold paths are relative to --corpus)")
    if scan.skipped:
        notes["corpus_files_skipped"] = len(scan.skipped)
        shown = ", ".join(f"{p} ({why})" for p, why in scan.skipped[:3])
        warnings.append(f"{len(scan.skipped)} corpus files not indexed: {shown}"
                        + (" ..." if len(scan.skipped) > 3 else ""))
    notes["warnings"] = warnings
    if not kept:
        example = next((g for q in queries if (k := _key(q, GOLD_KEYS))
                        for g in _golds(q.get(k))), None)
        raise ValueError(
            f"{queries_file}: none of the {len(queries)} queries names a runbook of the corpus "
            + (f"(e.g. gold {example!r}; corpus paths look like {paths[0]!r})" if example
               else f"(no gold field; expected one of: {', '.join(GOLD_KEYS[:6])})"))
    return RetrievalQueries(kept, kept_texts, golds, {**notes, **queries.report()})


def runbook_rank(services: Any, text: str,
                 gold: str | Sequence[str] | None) -> tuple[int | None, list[Any]]:
    """Rank (1-based) of the ``gold`` runbook path (or the best of several) among the top
    10 hits, and the hits."""
    from bot.knowledge_base import RUNBOOKS

    vector = services.embedder.encode_one(text)
    hits = services.knowledge.search(RUNBOOKS, text, vector, k=10)
    paths = [h.best.doc_key.split(":", 1)[-1] for h in hits]
    return _rank(paths, gold), hits


def _rank(paths: Sequence[str], gold: str | Sequence[str] | None) -> int | None:
    golds = [gold] if isinstance(gold, str) else list(gold or ())
    ranks = [paths.index(g) + 1 for g in golds if g in paths]
    return min(ranks) if ranks else None


def evaluate_retrieval(corpus: Path, queries_file: Path, *, field: str = "text") -> dict[str, Any]:
    """Index ``corpus`` through `index runbooks`, run every query, report hit@k, MRR, latency.

    The baseline is BM25 over whole documents (the keyword search teams already have).
    """
    from knowledge.documents import scan_folder
    from knowledge.index import LexicalIndex

    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus}")
    scan = scan_folder(corpus)
    checked = retrieval_queries(corpus, queries_file, field, scan)
    texts = checked.texts
    with temporary_services() as services:
        services.knowledge.index_runbooks(corpus, source="eval")
        ranks: list[int | None] = []
        latencies: list[float] = []
        for gold, text in zip(checked.golds, texts, strict=True):
            started = time.perf_counter()
            rank, _ = runbook_rank(services, text, gold)
            latencies.append((time.perf_counter() - started) * 1000)
            ranks.append(rank)

    docs = scan.documents
    lexical = LexicalIndex().build(
        list(range(len(docs))),
        [d.title + "\n" + "\n".join(s.text for s in d.sections) for d in docs],
    )
    base_ranks: list[int | None] = []
    for gold, text in zip(checked.golds, texts, strict=True):
        base_ranks.append(_rank([docs[i].path for i, _ in lexical.search(text, 10)], gold))
    report = rank_report(ranks)
    report.update(
        {
            "p50_ms": round(_percentile(latencies, 50), 2),
            "p95_ms": round(_percentile(latencies, 95), 2),
            "field": field,
            "baseline_bm25_documents": rank_report(base_ranks),
            **checked.notes,
        }
    )
    return report


def rank_report(ranks: Sequence[int | None]) -> dict[str, Any]:
    n = len(ranks)

    def hit(k: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= k) / n, 4) if n else 0.0

    mrr = round(sum(1.0 / r for r in ranks if r) / n, 4) if n else 0.0
    return {"n": n, "hit@1": hit(1), "hit@3": hit(3), "hit@5": hit(5), "mrr": mrr}


# --- classification ---------------------------------------------------------------------------


def _labelled(records: Sequence[Any], target: str) -> list[Any]:
    """The records that have both a text and a ``target`` label (blank is unlabelled)."""
    return [r for r in records if r.text.strip() and _label(r, target)]


def _texts_labels(records: Sequence[Any], target: str,
                  canon: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Text and label of every record that has both (blank labels count as unlabelled);
    ``canon`` maps a label's spelling to the one it is counted as."""
    kept = _labelled(records, target)
    labels = [_label(r, target) for r in kept]
    return [r.text.strip() for r in kept], [(canon or {}).get(lab, lab) for lab in labels]


def label_notes(target: str, files: Sequence[LabelledFile], canon: dict[str, str],
                train_labels: Sequence[str], test_labels: Sequence[str], *,
                unlabelled_fate: str = "left out (neither trained nor tested on)",
                ) -> dict[str, Any]:
    """What the report should say about the labels beside the figures: rows left out for
    want of a label, spellings merged, test labels no training row has (the model cannot
    answer them; they count as errors). ``warnings`` says each in one line."""
    distinct = list({id(f): f for f in files}.values())
    unlabelled = sum(1 for f in distinct for r in f.records
                     if r.text.strip() and not _label(r, target))
    unseen = sorted(set(test_labels) - set(train_labels))
    unseen_rows = sum(lab in unseen for lab in test_labels)
    notes: dict[str, Any] = {"rows_unlabelled": unlabelled}
    warnings: list[str] = []
    if unlabelled:
        warnings.append(f"{unlabelled} rows have no {target!r} label: {unlabelled_fate}")
    if canon:
        merged: dict[str, list[str]] = defaultdict(list)
        for spelling, label in sorted(canon.items()):
            merged[label].append(spelling)
        notes["labels_merged"] = dict(merged)
        shown = "; ".join(f"{label!r} = " + ", ".join(map(repr, sp))
                          for label, sp in list(merged.items())[:5])
        warnings.append(f"{len(canon)} label spellings that differ only in case or spacing "
                        f"were merged: {shown}" + (" ..." if len(merged) > 5 else ""))
    if unseen:
        notes["test_labels_not_in_train"] = unseen[:20]
        notes["test_rows_with_labels_not_in_train"] = unseen_rows
        warnings.append(f"{unseen_rows} of {len(test_labels)} test rows carry {len(unseen)} "
                        f"labels no training row has ({', '.join(unseen[:5])}"
                        f"{', ...' if len(unseen) > 5 else ''}): counted as errors, as no "
                        "model trained on this file can answer them")
    if 0 < len(test_labels) < SMALL_TEST:
        warnings.append(f"only {len(test_labels)} test rows: one answer moves accuracy by "
                        f"{100 / len(test_labels):.0f} points; measure on more rows (with one "
                        "file: --folds 5 tests every row)")
    notes["warnings"] = warnings
    return notes


SMALL_TEST = 30  # fewer test rows than this: the figures say little, and the run says so


@dataclass(frozen=True)
class LabelledFile:
    """The records of one evaluation file and what reading it skipped."""

    path: Path
    records: list[Any]
    errors: list[Any]  # knowledge.records.RowError of every skipped row
    unread_columns: tuple[str, ...] = ()  # columns / keys that no record field reads

    @property
    def skipped(self) -> int:
        return len(self.errors)

    @property
    def first_error(self) -> str:
        """``"line N: why"`` of the first skipped row ("" when none was)."""
        return f"line {self.errors[0].line}: {self.errors[0].message}" if self.errors else ""


def _read_labelled(path: Path, preset: str | None = None,
                   mapping: dict[str, str] | None = None) -> LabelledFile:
    """Records of a JSONL, JSON, CSV or TSV file (optionally gzipped), read as
    `triagebot import` reads them (ids optional)."""
    from knowledge.records import read_records

    result = read_records(path, preset=preset, mapping=mapping, ids_optional=True)
    return LabelledFile(path, result.records, result.errors, result.extra_columns)


def _skipped_rows(*files: LabelledFile) -> tuple[int, str]:
    """How many rows of ``files`` could not be read (a file read twice counts once), and
    "file: line N: why" of the first."""
    distinct = list({id(f): f for f in files}.values())
    first = next((f"{f.path.name}: {f.first_error}" for f in distinct if f.skipped), "")
    return sum(f.skipped for f in distinct), first


def _no_labels_error(file: LabelledFile, target: str, role: str) -> ValueError:
    """Why a file gave no (text, label) rows, in terms the user can act on."""
    if not file.records and not file.skipped:
        return ValueError(f"{role} file {file.path.name}: the file holds no rows")
    fields = sorted({f for r in file.records for f in _fields_present(r)})
    parts = [f"{role} file {file.path.name}: no row with text and a {target!r} label",
             f"{len(file.records)} records read"]
    if file.skipped:
        parts.append(f"{file.skipped} rows skipped (first: {file.first_error})")
    if fields:
        parts.append("fields found: " + ", ".join(fields))
    if file.unread_columns:
        shown = ", ".join(file.unread_columns[:12])
        more = len(file.unread_columns) - 12
        parts.append(f"columns no field reads: {shown}" + (f" and {more} more" if more > 0 else ""))
    return ValueError("; ".join(parts) + " (map a column to a field with --map field=column, "
                      "e.g. --map description=<the text column>)")


def _fields_present(record: Any) -> list[str]:
    from knowledge.records import TEXT_FIELDS

    return [f for f in TEXT_FIELDS if f != "id" and getattr(record, f)] + list(record.extra)


@dataclass(frozen=True)
class LabelledSplit:
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]
    how: str  # how the rows were split, for the report
    rows_skipped: int  # unreadable rows (bad JSON, no text, duplicate id) in both files
    first_skipped: str = ""  # "file: line N: why" of the first one
    train_records: list[Any] = dataclass_field(default_factory=list)  # aligned with train_texts
    notes: dict[str, Any] = dataclass_field(default_factory=dict)  # :func:`label_notes`

    def train_field(self, name: str) -> list[str]:
        """Another field's labels of the training rows ("" where a row has none)."""
        return [_label(r, name) for r in self.train_records]


def split_rows(train_file: Path, test_file: Path, target: str, *, test_fraction: float = 0.2,
               seed: int = 0, preset: str | None = None, mapping: dict[str, str] | None = None,
               ) -> LabelledSplit:
    """Train and test texts/labels, and how they were split.

    Two files: one is the training set, the other the test set. The same file twice: its
    ``split`` field decides; a file without one gets a stratified split (``test_fraction``,
    ``seed``), so any labelled file can be measured without preparing files first.
    """
    from classifiers.evaluate import stratified_split

    if train_file.resolve() != test_file.resolve():
        train, test = (_read_labelled(f, preset, mapping) for f in (train_file, test_file))
        canon = _canon(target, train, test)
        tr_records = _labelled(train.records, target)
        tr_texts, tr_labels = _texts_labels(tr_records, target, canon)
        te_texts, te_labels = _texts_labels(test.records, target, canon)
        how = "train and test files"
    else:
        train = test = _read_labelled(train_file, preset, mapping)
        canon = _canon(target, train)
        records = train.records
        is_test = [r.extra.get("split") == "test" for r in records]
        if any(is_test):
            tr_records = _labelled(
                [r for r, t in zip(records, is_test, strict=True) if not t], target)
            tr_texts, tr_labels = _texts_labels(tr_records, target, canon)
            te_texts, te_labels = _texts_labels(
                [r for r, t in zip(records, is_test, strict=True) if t], target, canon)
            how = "the file's split field"
        else:
            kept = _labelled(records, target)
            texts, labels = _texts_labels(kept, target, canon)
            if not texts:
                raise _no_labels_error(train, target, "train")
            tr, te = stratified_split(labels, test_fraction, seed=seed)
            if len(te) == 0:
                raise ValueError(f"{train_file.name}: {len(texts)} rows with a {target!r} label "
                                 "leave none to test on (every label needs 2 rows or more)")
            tr_texts, tr_labels = [texts[i] for i in tr], [labels[i] for i in tr]
            tr_records = [kept[i] for i in tr]
            te_texts, te_labels = [texts[i] for i in te], [labels[i] for i in te]
            how = f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%}, seed {seed}"
    if not tr_texts:
        raise _no_labels_error(train, target, "train")
    if not te_texts:
        raise _no_labels_error(test, target, "test")
    _check_two_labels(train, target, tr_labels)
    return LabelledSplit(tr_texts, tr_labels, te_texts, te_labels, how,
                         *_skipped_rows(train, test), train_records=tr_records,
                         notes=label_notes(target, [train, test], canon, tr_labels, te_labels))


def _canon(target: str, *files: LabelledFile) -> dict[str, str]:
    """:func:`label_spellings` of the ``target`` labels of every record of ``files``."""
    return label_spellings([lab for f in files for r in f.records if (lab := _label(r, target))])


def _check_two_labels(file: LabelledFile, target: str, labels: Sequence[str]) -> None:
    """A classifier needs two labels to choose between: say so about the file."""
    if len(set(labels)) < 2:
        raise ValueError(
            f"train file {file.path.name}: every one of the {len(labels)} training rows with a "
            f"{target!r} label says {labels[0]!r}; a classifier needs 2 or more distinct "
            "labels (is --target the right field?)")


def evaluate_classification(
    train_file: Path, test_file: Path, *, target: str, min_precision: float = 0.9,
    test_fraction: float = 0.2, seed: int = 0, preset: str | None = None,
    mapping: dict[str, str] | None = None, taxonomy: Path | None = None,
    train_sizes: Sequence[int] = (), finer: str = "auto", folds: int = 0,
) -> dict[str, Any]:
    """Train through the product's classifier and compare with TF-IDF + LinearSVC.

    ``folds`` >= 2 cross-validates one file instead (:func:`cross_validate_classification`).

    ``finer``: a field of the training records that refines ``target`` (see
    :mod:`classifiers.hierarchy`); "auto" looks among the label fields, as ``train`` does;
    "none" measures without.

    With ``taxonomy`` the zero-shot model of ``target`` (what the product answers with
    before it has labels) is measured on the same test rows; with ``train_sizes`` both
    trained models are also fitted on random subsets of that many training rows (a learning
    curve: how many labels a team needs before training beats zero-shot).
    """
    from bot.app import make_embedder

    if folds:
        if taxonomy is not None or train_sizes:
            raise ValueError("--folds does not combine with --taxonomy or --train-sizes; "
                             "measure those on one split")
        return cross_validate_classification(
            train_file, test_file, target=target, folds=folds, min_precision=min_precision,
            seed=seed, preset=preset, mapping=mapping, finer=finer)
    settings = Settings()
    # read first: a wrong taxonomy should fail before minutes of embedding and training
    descriptions = taxonomy_entry(taxonomy, target) if taxonomy is not None else None
    rows = split_rows(train_file, test_file, target, test_fraction=test_fraction, seed=seed,
                      preset=preset, mapping=mapping)
    tr_texts, tr_labels, te_texts, te_labels = (
        rows.train_texts, rows.train_labels, rows.test_texts, rows.test_labels)
    finer_name, fine = finer_labels(rows, target, finer)
    embedder = make_embedder(settings)
    tr_emb = embedder.encode(tr_texts)
    te_emb = embedder.encode(te_texts)
    model, ours, base = train_both(rows, tr_emb, te_emb, target=target,
                                   min_precision=min_precision, finer_name=finer_name,
                                   fine=fine)
    result: dict[str, Any] = {"target": target, "n_train": len(tr_texts),
                              "n_test": len(te_texts)}
    result.update(_rounded(ours.report(target, len(tr_texts))))
    # what fit chose from out-of-fold predictions on the training rows (never the test rows)
    result["chosen_in_fit"] = chosen_in_fit(model)
    result["baseline_tfidf_linearsvc"] = _rounded(base.report(target, len(tr_texts)))
    zero_shot = None
    if descriptions is not None:
        from classifiers.zeroshot import zero_shot_model

        zero_shot = zero_shot_model(target, descriptions, embedder.encode,
                                    min_precision=min_precision)
        # as the product serves it before any label exists: always unsure, top candidates
        result["zero_shot"] = zero_shot_report(zero_shot, te_texts, te_emb, te_labels)
        # once the training rows are labelled: its threshold chosen on them
        zero_shot.calibrate(tr_texts, tr_emb, tr_labels)
        result["zero_shot_calibrated"] = zero_shot_report(zero_shot, te_texts, te_emb,
                                                          te_labels)
    if train_sizes:
        result["learning_curve"] = learning_curve(
            tr_texts, tr_emb, tr_labels, te_texts, te_emb, te_labels, target=target,
            sizes=train_sizes, min_precision=min_precision, seed=seed, zero_shot=zero_shot,
            fine=fine, fine_field=finer_name or "")
    result["split"] = rows.how
    result.update(skipped_fields(rows.rows_skipped, rows.first_skipped))
    result.update(rows.notes)
    return result


def train_both(rows: LabelledSplit, tr_emb: Any, te_emb: Any, *, target: str,
               min_precision: float, finer_name: str | None, fine: list[str] | None,
               ) -> tuple[Any, Any, Any]:
    """Our classifier (with the finer labels of :func:`finer_labels`, if any) and the TF-IDF
    + LinearSVC baseline trained on the training rows of ``rows``: (our model, our answers
    on the test rows, the baseline's), answers as :class:`classifiers.evaluate.Answers`."""
    from classifiers.evaluate import answers_of, baseline_answers
    from classifiers.model import TextClassifier

    model = TextClassifier(target, min_precision=min_precision).fit(
        rows.train_texts, tr_emb, rows.train_labels, fine_labels=fine,
        fine_field=finer_name or "")
    ours = answers_of(model, rows.test_texts, te_emb, rows.test_labels)
    base = baseline_answers(rows.train_texts, rows.train_labels, rows.test_texts,
                            rows.test_labels)
    return model, ours, base


def _rounded(report: Any) -> dict[str, float]:
    """A report's headline figures, rounded for output."""
    return {key: round(value, 4) for key, value in report.summary().items()}


def chosen_in_fit(model: Any) -> dict[str, Any]:
    """What fit chose from out-of-fold predictions on the training rows (never test rows)."""
    return {
        **model.chosen(),
        "blend_temperature": round(model.blend_temperature_, 4),
        "threshold": round(model.threshold_, 4),
        "oof_accuracy": round(float(model.oof_metrics_.get("oof_accuracy", 0.0)), 4),
        "oof_macro_f1": round(float(model.oof_metrics_.get("oof_macro_f1", 0.0)), 4),
        "oof_calibration_error": round(
            float(model.oof_metrics_.get("oof_calibration_error", 0.0)), 4),
    }


def cross_validate_classification(
    train_file: Path, test_file: Path, *, target: str, folds: int = 5,
    min_precision: float = 0.9, seed: int = 0, preset: str | None = None,
    mapping: dict[str, str] | None = None, finer: str = "auto",
) -> dict[str, Any]:
    """K-fold cross-validation of our classifier and the baseline on one labelled file.

    Every row is tested once, by models trained on the other folds (a label with a single
    row is only ever trained on). The headline figures pool the answers of all folds, so
    they rest on every row rather than on one 20% split; ``cross_validation`` adds the
    margin over the baseline fold by fold, its mean and standard error, which says how
    much a single split's margin may move by chance. The file's ``split`` field, if any,
    is ignored: every row takes part.
    """
    from bot.app import make_embedder
    from classifiers.evaluate import Answers, stratified_folds

    if train_file.resolve() != test_file.resolve():
        raise ValueError("--folds cross-validates one file: give it as both --train and --test")
    labelled = _read_labelled(train_file, preset, mapping)
    records = _labelled(labelled.records, target)
    canon = _canon(target, labelled)
    texts, labels = _texts_labels(records, target, canon)
    if not texts:
        raise _no_labels_error(labelled, target, "train")
    _check_two_labels(labelled, target, labels)
    fold_of = stratified_folds(labels, folds, seed=seed)
    if len({f for f in fold_of if f >= 0}) < folds:
        raise ValueError(f"{train_file.name}: {len(texts)} rows with a {target!r} label are "
                         f"too few for {folds} folds")
    settings = Settings()
    embeddings = make_embedder(settings).encode(texts)
    ours_all, base_all = Answers(), Answers(confidence=None)
    per_fold: list[dict[str, Any]] = []
    for k in range(folds):
        test_idx = np.flatnonzero(fold_of == k)
        train_idx = np.flatnonzero(fold_of != k)
        rows = LabelledSplit(
            [texts[i] for i in train_idx], [labels[i] for i in train_idx],
            [texts[i] for i in test_idx], [labels[i] for i in test_idx], how=f"fold {k + 1}",
            rows_skipped=0, train_records=[records[i] for i in train_idx])
        finer_name, fine = finer_labels(rows, target, finer)
        model, ours, base = train_both(rows, embeddings[train_idx], embeddings[test_idx],
                                       target=target, min_precision=min_precision,
                                       finer_name=finer_name, fine=fine)
        ours_all.extend(ours)
        base_all.extend(base)
        ours_r, base_r = ours.report(target, len(train_idx)), base.report(target, len(train_idx))
        per_fold.append({
            "fold": k + 1, "n_train": len(train_idx), "n_test": len(test_idx),
            **_rounded(ours_r),
            "baseline_accuracy": round(base_r.accuracy, 4),
            "baseline_macro_f1": round(base_r.macro_f1, 4),
            "chosen_in_fit": chosen_in_fit(model),
        })
    n_train = round(float(np.mean([f["n_train"] for f in per_fold])))
    ours_pooled, base_pooled = ours_all.report(target, n_train), base_all.report(target, n_train)
    result: dict[str, Any] = {"target": target, "n_train": n_train,
                              "n_test": ours_pooled.n_test}
    result.update(_rounded(ours_pooled))
    result["baseline_tfidf_linearsvc"] = _rounded(base_pooled)
    result["cross_validation"] = {
        "folds": folds, "seed": seed,
        "accuracy_margin": _margin(per_fold, "accuracy"),
        "macro_f1_margin": _margin(per_fold, "macro_f1"),
        "per_fold": per_fold,
    }
    result["split"] = (f"{folds}-fold cross-validation, stratified, seed {seed}"
                       + (" (the file's split field is ignored)"
                          if any(r.extra.get("split") for r in records) else ""))
    result.update(skipped_fields(*_skipped_rows(labelled)))
    result.update(label_notes(target, [labelled], canon, labels, []))
    return result


def _margin(per_fold: Sequence[dict[str, Any]], figure: str) -> dict[str, Any]:
    """Our figure minus the baseline's, per fold: each, their mean, standard error, minimum."""
    diffs = np.array([f[figure] - f[f"baseline_{figure}"] for f in per_fold])
    se = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    return {"mean": round(float(diffs.mean()), 4), "standard_error": round(se, 4),
            "min": round(float(diffs.min()), 4), "per_fold": [round(float(d), 4) for d in diffs]}


def finer_labels(rows: LabelledSplit, target: str,
                 finer: str) -> tuple[str | None, list[str] | None]:
    """The finer field's name and labels for the training rows, or ``(None, None)``.

    ``finer`` is "auto" (the label column that best refines ``target``, if any), "none", or
    a field name, which must label some training rows.
    """
    from bot.store.models import LABEL_COLUMNS
    from classifiers.hierarchy import finer_field

    if finer == "none":
        return None, None
    if finer != "auto":
        fine = rows.train_field(finer)
        if not any(fine):
            raise ValueError(f"--finer {finer}: no training row has a {finer!r} label")
        return finer, fine
    fields = {name: rows.train_field(name) for name in LABEL_COLUMNS if name != target}
    name = finer_field(rows.train_labels, fields)
    return (name, fields[name]) if name else (None, None)


def taxonomy_entry(taxonomy: Path, target: str) -> dict[str, str]:
    """``{label: description}`` of ``target`` in a taxonomy file, or a ValueError that says
    what the file should contain."""
    from classifiers.zeroshot import load_taxonomy

    descriptions = load_taxonomy(taxonomy).get(target)
    if descriptions is None:
        raise ValueError(f"taxonomy {taxonomy.name} has no {target!r} entry with 2 or more "
                         f"labels (expected: {target}: {{label: description, ...}})")
    return descriptions


def zero_shot_report(model: Any, texts: list[str], emb: Any,
                     labels: list[str]) -> dict[str, Any]:
    """Figures of a zero-shot model on the given test rows, its threshold, and which test
    labels its taxonomy does not name (it can never get those right)."""
    from classifiers.evaluate import evaluate

    report = evaluate(model, texts, emb, labels)
    missing = sorted(set(labels) - set(model.label_descriptions))
    out: dict[str, Any] = {k: round(v, 4) for k, v in report.summary().items()}
    out["n_labels"] = len(model.label_descriptions)
    out["calibrated_on"] = int(model.calibration_["n"])
    out["threshold"] = round(min(model.threshold_, 1.0), 4)
    out["test_labels_not_in_taxonomy"] = missing[:20]
    out["test_rows_with_such_labels"] = sum(lab in missing for lab in labels)
    return out


def learning_curve(tr_texts: list[str], tr_emb: Any, tr_labels: list[str],
                   te_texts: list[str], te_emb: Any, te_labels: list[str], *, target: str,
                   sizes: Sequence[int], min_precision: float, seed: int,
                   zero_shot: Any = None, fine: Sequence[str] | None = None,
                   fine_field: str = "") -> list[dict[str, Any]]:
    """Our model and the baseline trained on a random ``n`` of the training rows, for each
    ``n`` in ``sizes`` (the rows a team would have labelled first: no stratification), all
    measured on the same test rows. Sizes at or above the training set are measured on
    all of it once; a subset with a single label cannot be trained and says so. With a
    ``zero_shot`` model, each point also gives its coverage once calibrated on those N rows
    (its labels do not change; only what it dares to answer does). ``fine``: the finer
    labels of the training rows, given to our model as in the full run."""
    from classifiers.evaluate import baseline_tfidf_svc, evaluate
    from classifiers.model import TextClassifier

    order = np.random.default_rng(seed).permutation(len(tr_texts))
    points: list[dict[str, Any]] = []
    for n in sorted({min(int(n), len(tr_texts)) for n in sizes if int(n) > 0}):
        pick = order[:n]
        texts = [tr_texts[i] for i in pick]
        labels = [tr_labels[i] for i in pick]
        point: dict[str, Any] = {"n_train": n, "n_labels": len(set(labels))}
        if len(set(labels)) < 2:
            point["skipped"] = "a single label in this subset: nothing to train"
            points.append(point)
            continue
        model = TextClassifier(target, min_precision=min_precision).fit(
            texts, tr_emb[pick], labels, fine_field=fine_field,
            fine_labels=[fine[i] for i in pick] if fine is not None else None)
        ours = evaluate(model, te_texts, te_emb, te_labels)
        base = baseline_tfidf_svc(texts, labels, te_texts, te_labels)
        point.update({k: round(v, 4) for k, v in ours.summary().items()
                      if k != "calibration_error"})
        point["baseline_tfidf_linearsvc"] = {"accuracy": round(base.accuracy, 4),
                                             "macro_f1": round(base.macro_f1, 4)}
        if zero_shot is not None:  # a copy: the caller's model keeps its calibration
            zs = evaluate(copy.copy(zero_shot).calibrate(texts, tr_emb[pick], labels),
                          te_texts, te_emb, te_labels)
            point["zero_shot_calibrated"] = {"coverage": round(zs.coverage, 4),
                                             "covered_accuracy": round(zs.covered_accuracy, 4)}
        points.append(point)
    return points


# --- incidents (retrieval-based category votes) -----------------------------------------------


def _label(record: Any, target: str) -> str:
    """The record's ``target`` label; a list (multi-label field) gives its first label.

    ``target`` is a record field or a key of the record's other fields, spelled as in the
    file or not (``assignment_group`` finds ``Assignment group``), or a dotted path into a
    nested object. False and 0 are labels, not blanks."""
    from knowledge.records import TEXT_FIELDS, value_of

    value = getattr(record, target) if target in TEXT_FIELDS else ""
    if value == "":
        value = value_of(record.extra, target)
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value).strip()


def similarity_vote(neighbours: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The label with the largest summed similarity among ``(label, score)`` neighbours, and
    its share of the total (0 when nothing votes). Unlabelled neighbours do not vote."""
    votes: dict[str, float] = defaultdict(float)
    for label, score in neighbours:
        if label:
            votes[label] += max(float(score), 1e-6)
    if not votes:
        return "", 0.0
    label, weight = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
    return label, weight / sum(votes.values())


def evaluate_incidents(
    history_file: Path, *, test_file: Path | None = None, target: str = "category", k: int = 5,
    preset: str | None = None, mapping: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``target`` voted by the ``k`` incidents the product retrieves vs by BM25 neighbours.

    Without ``test_file`` every labelled history record is a query against all the *others*
    (leave-one-out: the query's own document is excluded inside the search, so it neither
    ranks nor shifts the BM25 normalization). The history is embedded once, through the same
    import as production; leave-one-out queries reuse their stored vectors, a test file is
    embedded in one batch. ``novel_rate`` is the share of queries whose nearest neighbour is
    below the knowledge base's novelty threshold.
    """
    from bot.knowledge_base import INCIDENTS, incident_passage
    from bot.store import repository as repo
    from bot.store.db import session_scope
    from knowledge.index import LexicalIndex

    files = [_read_labelled(history_file, preset, mapping)]
    history = files[0].records
    if not history:
        raise ValueError(f"{history_file}: no records")
    leave_one_out = test_file is None
    if not leave_one_out:
        files.append(_read_labelled(test_file, preset, mapping))
    tests = history if leave_one_out else files[1].records
    queries = [r for r in tests if _label(r, target) and r.text.strip()]
    if not queries:
        raise _no_labels_error(files[-1], target, "history" if leave_one_out else "test")
    canon = _canon(target, *files)
    labelled = {r.id: canon.get(lab, lab) for r in history if (lab := _label(r, target))}
    started = time.perf_counter()
    with temporary_services() as services:
        services.knowledge.import_records(history, kind="incident", source_name="eval")
        index = services.knowledge.indexes[INCIDENTS]
        threshold = services.assistant.novelty_threshold
        with session_scope(services.sessions) as session:
            rows = repo.list_incidents(session=session)
            by_external = {r.external_id: incident_passage(r) for r in rows}
        ext_by_doc = {p.doc_key: ext for ext, p in by_external.items()}
        if leave_one_out:
            passages = [by_external[q.id] for q in queries]
            vectors = index.vectors([p.id for p in passages])
            excludes: list[list[str]] = [[p.doc_key] for p in passages]
        else:
            vectors = services.embedder.encode([q.text for q in queries])
            excludes = [[] for _ in queries]
        ours, novel, latencies = [], 0, []
        for q, vector, exclude in zip(queries, vectors, excludes, strict=True):
            t0 = time.perf_counter()
            hits = index.search(q.text, vector, k=k, exclude=exclude)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not hits or max(h.dense for h in hits) < threshold:
                novel += 1
            ours.append([(ext_by_doc.get(h.doc_key, ""), h.score) for h in hits])
    elapsed = time.perf_counter() - started

    ids = [r.id for r in history]
    lexical = LexicalIndex().build(list(range(len(history))), [r.text for r in history])
    base = []
    for q in queries:
        found = [(ids[i], s) for i, s in lexical.search(q.text, k + 1)]
        base.append([f for f in found if not (leave_one_out and f[0] == q.id)][:k])
    truth = [canon.get(lab, lab) for q in queries if (lab := _label(q, target))]
    report = {
        "target": target,
        "mode": "leave-one-out" if leave_one_out else "test file",
        **_vote_metrics(ours, truth, labelled, k, target),
        "novel_rate": round(novel / len(queries), 4),
        "novelty_threshold": round(float(threshold), 4),
        "search_p50_ms": round(_percentile(latencies, 50), 2),
        "seconds": round(elapsed, 1),
        "baseline_bm25_neighbours": _vote_metrics(base, truth, labelled, k, target),
        **skipped_fields(*_skipped_rows(*files)),
        **label_notes(target, files, canon, list(labelled.values()), truth,
                      unlabelled_fate="not queries; found as neighbours, they do not vote"),
    }
    return report


def hit_key(target: str) -> str:
    """The report key of the share of queries whose neighbours voted the true ``target``
    (``category_hit@1``, ``team_hit@1``, ...)."""
    return f"{target}_hit@1"


def _vote_metrics(
    found: Sequence[Sequence[tuple[str, float]]],
    truth: Sequence[str],
    labelled: dict[str, str],
    k: int,
    target: str,
) -> dict[str, Any]:
    hits, precisions = 0, []
    for neighbours, label in zip(found, truth, strict=True):
        voted, _ = similarity_vote([(labelled.get(i, ""), s) for i, s in neighbours])
        hits += int(voted == label)
        precisions.append(sum(labelled.get(i, "") == label for i, _ in neighbours[:k]) / k)
    n = len(truth)
    return {
        "n": n,
        hit_key(target): round(hits / n, 4),
        "precision@5": round(float(np.mean(precisions)), 4),
    }


# --- grouping ---------------------------------------------------------------------------------


def evaluate_grouping_file(events_file: Path) -> dict[str, Any]:
    """Group each line's text; compare with the true groups, per system and overall."""
    from bot.intake.evaluation import drain3_baseline, evaluate_grouping
    from bot.intake.grouping import group_lines

    lines = read_jsonl(events_file)
    rows = [r for r in lines if "text" in r and "group" in r]
    if not rows:
        raise ValueError(f"{events_file}: no lines with text and group")
    by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_system[str(row.get("system", "all"))].append(row)
    systems = {}
    for system, items in sorted(by_system.items()):
        texts = [str(r["text"]) for r in items]
        truth = [str(r["group"]) for r in items]
        ours = evaluate_grouping(texts, truth, group_lines(texts)).__dict__
        base = evaluate_grouping(texts, truth, drain3_baseline(texts)).__dict__
        systems[system] = {"ours": ours, "drain3": base}
    n = len(rows)

    def weighted(which: str, key: str) -> float:
        return round(sum(s[which][key] * s[which]["n"] for s in systems.values()) / n, 4)

    return {
        "n": n,
        "groups_true": sum(s["ours"]["groups_true"] for s in systems.values()),
        "groups_pred": sum(s["ours"]["groups_pred"] for s in systems.values()),
        "ari": weighted("ours", "ari"),
        "grouping_accuracy": weighted("ours", "grouping_accuracy"),
        "baseline_drain3": {
            "ari": weighted("drain3", "ari"),
            "grouping_accuracy": weighted("drain3", "grouping_accuracy"),
        },
        "systems": systems,
        **lines.report(),
    }
