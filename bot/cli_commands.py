"""CLI commands for admins: train, models, eval, audit (registered on import by bot.cli)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

from bot.cli import (
    PIPE_WIDTH,
    UserError,
    app,
    audit_app,
    console,
    err_console,
    eval_app,
    friendly_errors,
    jobs_app,
    load_settings,
    models_app,
    parse_map,
    print_json,
    services,
    train_outcome_line,
)

# Options shared by several commands.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CorpusOption = Annotated[Path, typer.Option(help="Folder of runbooks.")]
QueriesOption = Annotated[Path, typer.Option(
    help="Queries (JSONL, JSON or CSV): text (or query, question, alert) and gold (or "
         "expected, runbook, relevant): a runbook path relative to --corpus.")]
FieldOption = Annotated[str, typer.Option(help="text or text_without_name")]

# --- training and the model registry ----------------------------------------------------------


def cli_actor() -> str:
    """Who the audit trail names for a change made on the command line: ``cli:`` and the
    login name (``cli`` alone when the process has none, as in a container with a bare uid)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry for the uid
        return "cli"
    return f"cli:{user}"[:100] if user else "cli"


def _check_target(target: str | None) -> None:
    """Refuse a --target that is not one of the classified fields (a typo, or a field missing
    from TRIAGEBOT_TARGETS), before anything is loaded."""
    fields = load_settings().target_fields
    if target is not None and target not in fields:
        raise UserError(f"--target {target}: not a classified field; TRIAGEBOT_TARGETS lists "
                        f"{', '.join(fields)}")


@app.command()
@friendly_errors
def train(
    target: Annotated[str | None, typer.Option(help="One field (default: all targets).")] = None,
    force: Annotated[bool, typer.Option(
        help="Retrain even if nothing changed; promote even if not better.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train challengers; each replaces the active model only if it measures at least as well."""
    _check_target(target)
    svc = services()
    targets = [target] if target else list(svc.classifiers.targets)
    with err_console.status("training") as status:  # shown in a terminal only

        def starting(name: str) -> None:
            status.update(f"training {name} ({targets.index(name) + 1}/{len(targets)})")

        outcomes = svc.classifiers.train_each(targets, actor=cli_actor(), force=force,
                                              on_start=starting)
    if as_json:
        print_json([{"target": name, "skipped": o} if isinstance(o, str) else o.__dict__
                    for name, o in zip(targets, outcomes, strict=True)])
        return
    for outcome in outcomes:
        console.print(f"skipped: {outcome}" if isinstance(outcome, str)
                      else train_outcome_line(outcome))


@models_app.command("list")
@friendly_errors
def models_list(
    target: Annotated[str | None, typer.Option(help="One field (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """All model versions with status and held-out figures."""
    from bot.store import repository as repo
    from bot.store.db import session_scope
    from knowledge.embed import embedding_model_name

    svc = services(models=False)
    serving = embedding_model_name(svc.settings.embedding_model, svc.settings.embedding_backend)
    with session_scope(svc.sessions) as session:
        rows = [
            {
                "version": m.version,
                "target": m.target,
                "status": m.status,
                "accuracy": m.metrics.get("accuracy"),
                "macro_f1": m.metrics.get("macro_f1"),
                "coverage": m.metrics.get("coverage"),
                "n_train": m.n_train,
                "created_at": m.created_at.isoformat(),
                "embedding_model": (m.library_versions or {}).get("embedding_model"),
            }
            for m in repo.list_model_versions(session=session, target=target)
        ]
        # active versions trained on other embeddings than the settings make, and not yet
        # measured on them (a retrain whose challenger they kept out)
        stale = [r for r in rows if r["status"] == "active" and r["embedding_model"]
                 and r["embedding_model"] != serving
                 and not repo.kept_on_these_embeddings(
                     session=session, target=r["target"], version=r["version"],
                     embedding_model=serving)]
    if as_json:
        print_json(rows)
        return
    if not rows and target and target not in svc.settings.target_fields:
        console.print(f"no model versions of {target!r} (classified fields: "
                      f"{', '.join(svc.settings.target_fields)})", markup=False, soft_wrap=True)
        return
    # the version is what `models show|promote` take: never shortened in an 80-column terminal
    width = max((len(r["version"]) for r in rows), default=7)
    table = Table(Column("version", no_wrap=True, min_width=width),
                  *(Column(name, no_wrap=True, min_width=len(name))
                    for name in ("status", "accuracy", "macro-F1", "coverage", "n_train")),
                  box=SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for r in rows:
        table.add_row(
            r["version"],
            r["status"],
            _fmt(r["accuracy"]),
            _fmt(r["macro_f1"]),
            _fmt(r["coverage"]),
            str(r["n_train"]),
        )
    if rows and _fits(table):
        console.print(table)
    else:  # a terminal too narrow for the table: a block per version, nothing cut
        for r in rows:
            console.print(f"{r['version']}  {r['status']}", soft_wrap=True, highlight=False)
            figures = (f"accuracy {_fmt(r['accuracy'])}  macro-F1 {_fmt(r['macro_f1'])}  "
                       f"coverage {_fmt(r['coverage'])}  n_train {r['n_train']}")
            console.print(Padding(Text(figures), (0, 0, 0, 2), expand=False))  # wrapped, never cut
    for line in _untrained_targets(svc.settings, {r["target"] for r in rows
                                                  if r["status"] == "active"}, target):
        console.print(line, soft_wrap=True)  # one line each, whatever the terminal width
    for r in stale:
        console.print(f"{r['target']}: {r['version']} was trained on {r['embedding_model']} "
                      f"embeddings; this install makes {serving}: retrain it (`triagebot train "
                      f"--target {r['target']}`; a server with the scheduler on does it after "
                      "start)", soft_wrap=True, markup=False)


def _fits(table: Table) -> bool:
    """Whether the table shows whole in the console's width (Rich cuts no_wrap columns)."""
    unbounded = console.options.update(width=PIPE_WIDTH)  # a measure is clamped to its width
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _untrained_targets(settings: Any, trained: set[str], only: str | None) -> list[str]:
    """A line for each classified field without an active trained model: what answers it."""
    from bot.app import taxonomy_path
    from classifiers.zeroshot import load_taxonomy

    path = taxonomy_path(settings)
    lines = []
    try:
        taxonomy = load_taxonomy(path)
    except ValueError as exc:
        taxonomy = {}
        lines.append(f"[yellow]{escape(str(exc))}[/yellow]")
    for field in settings.target_fields:
        if field in trained or (only and field != only):
            continue
        if field in taxonomy:
            lines.append(f"{field}: zero-shot from {path.name} ({len(taxonomy[field])} labels), "
                         "no trained model active")
        else:
            lines.append(f"{field}: no model: no trained model active and no entry in "
                         f"{path.name}")
    return lines


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


@models_app.command("show")
@friendly_errors
def models_show(
    version: Annotated[str, typer.Argument(help="A version, or a target for its active one.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object, with the whole confusion matrix.")] = False,
) -> None:
    """One version: metrics, decision, data fingerprint, library versions, top confusions."""
    from bot.store import repository as repo
    from bot.store.db import session_scope

    svc = services(models=False)
    with session_scope(svc.sessions) as session:
        m = (repo.get_model_version(session=session, version=version)
             or repo.get_active_model(session=session, target=version))
        if m is None:
            raise UserError(f"no model version {version!r} and no active model for a target "
                            f"of that name (`triagebot models list` shows them)")
        shown = {
            "version": m.version,
            "target": m.target,
            "status": m.status,
            "artifact": m.artifact_path,
            "metrics": m.metrics,
            "decision": m.decision,
            "fingerprint": m.fingerprint,
            "library_versions": m.library_versions,
            "n_train": m.n_train,
            "created_at": m.created_at,
            "promoted_at": m.promoted_at,
        }
    if as_json:
        print_json(shown)
        return
    # The matrix printed by print_json takes a line per cell (hundreds); show its largest
    # off-diagonal cells instead.
    metrics = dict(shown["metrics"] or {})
    confusion = metrics.pop("confusion", None)
    print_json({**shown, "metrics": metrics})
    if confusion:
        for line in confusion_lines(confusion["labels"], confusion["matrix"]):
            console.print(line, markup=False, soft_wrap=True)


def confusion_lines(labels: list[str], matrix: list[list[int]], top: int = 10) -> list[str]:
    """The ``top`` largest confusions of a held-out confusion matrix, "true -> predicted: n"."""
    cells = sorted(((count, labels[i], labels[j]) for i, row in enumerate(matrix)
                    for j, count in enumerate(row) if i != j and count),
                   key=lambda c: (-c[0], c[1], c[2]))
    if not cells:
        return ["confusions on the held-out split: none"]
    lines = ["largest confusions on the held-out split (true -> predicted: count):"]
    lines += [f"  {true} -> {pred}: {count}" for count, true, pred in cells[:top]]
    if len(cells) > top:
        lines.append(f"  ... and {len(cells) - top} more (--json shows the whole matrix)")
    return lines


@models_app.command("promote")
@friendly_errors
def models_promote(version: Annotated[str, typer.Argument(
        help="A version from `triagebot models list`.")]) -> None:
    """Make a stored version the active one."""
    svc = services()
    if svc.classifiers.promote(version, actor=cli_actor()):
        console.print(f"{version} is now active")
    else:
        console.print(f"{version} is already active; nothing changed")


@models_app.command("rollback")
@friendly_errors
def models_rollback(target: Annotated[str, typer.Argument(help="e.g. category")]) -> None:
    """Re-activate the version that was active before the current one."""
    svc = services()
    current = svc.classifiers.active_versions().get(target, "")
    version = svc.classifiers.rollback(target, actor=cli_actor())
    # as the App Home says it: from which version, and the undo
    console.print(f"{target}: rolled back from {current} to {version} (undo: triagebot models "
                  f"promote {current})", markup=False, soft_wrap=True)


# --- evaluation -------------------------------------------------------------------------------


def _print_report(report: dict, as_json: bool, keys: list[str], baseline_key: str) -> None:
    if as_json:
        print_json(report)
    else:
        table = Table("figure", "triagebot", baseline_key)
        base = report.get(baseline_key, {})
        for key in keys:
            table.add_row(key, str(report.get(key, "-")), str(base.get(key, "-")))
        console.print(table)
    _warn_skipped(report)


def _warn_skipped(report: dict) -> None:
    """On stderr (stdout stays one JSON object with --json): one line when the evaluation
    files had rows that could not be read, and one per warning of the report."""
    if report.get("rows_skipped"):
        err_console.print(f"[yellow]{report['rows_skipped']} unreadable rows skipped[/yellow], "
                          f"the first: {escape(str(report['first_skipped']))}",
                          soft_wrap=True, highlight=False)
    for line in report.get("warnings", ()):
        err_console.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True,
                          highlight=False)


@eval_app.command("retrieval")
@friendly_errors
def eval_retrieval(
    corpus: CorpusOption,
    queries: QueriesOption,
    field: FieldOption = "text",
    as_json: JsonOption = False,
) -> None:
    """Runbook retrieval: hit@1/3/5, MRR, latency; BM25 over whole documents beside it."""
    from bot.evaluation import evaluate_retrieval

    report = evaluate_retrieval(corpus, queries, field=field)
    _print_report(
        report,
        as_json,
        ["n", "hit@1", "hit@3", "hit@5", "mrr", "p50_ms", "p95_ms"],
        "baseline_bm25_documents",
    )


@eval_app.command("classify")
@friendly_errors
def eval_classify(
    train_file: Annotated[Path, typer.Option(
        "--train", help="Labelled rows to train on (JSONL, JSON, CSV or TSV; .gz too).")],
    test_file: Annotated[Path, typer.Option(
        "--test", help="Labelled rows to test on; the same file as --train is split.")],
    target: Annotated[str, typer.Option(help="The label field to predict, e.g. team.")],
    min_precision: Annotated[float, typer.Option(
        min=0.01, max=1.0, help="Precision an answer must reach; below it 'unsure'.")] = 0.9,
    test_fraction: Annotated[float, typer.Option(
        min=0.01, max=0.99,
        help="Share held out when --train and --test name one file without a split field.",
    )] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of that stratified split (or of the folds).")] = 0,
    preset: Annotated[str | None, typer.Option(help="CSV preset: servicenow or jira.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="field=column (repeatable).")] = [],  # noqa: B006
    taxonomy: Annotated[Path | None, typer.Option(
        help="Also measure the zero-shot model of this taxonomy YAML (cold start).",
    )] = None,
    train_sizes: Annotated[str, typer.Option(
        help="Learning curve: also train on this many random training rows, e.g. 30,100,300.",
    )] = "",
    finer: Annotated[str, typer.Option(
        help="A field that refines the target (alert service for category): 'auto' finds "
             "one among the label fields, 'none' uses none.",
    )] = "auto",
    folds: Annotated[int, typer.Option(
        min=0, max=20,
        help="Cross-validate one file in this many stratified folds (every row tested "
             "once) instead of one split; 0 = one split.",
    )] = 0,
    as_json: JsonOption = False,
) -> None:
    """Classifier quality; TF-IDF word+char n-grams with LinearSVC beside it.

    Reads files as `triagebot import` does (JSONL, JSON, CSV or TSV, --preset, --map),
    ids optional. The target may be any field of the records, e.g. a CSV column.
    """
    from bot.evaluation import evaluate_classification

    report = evaluate_classification(
        train_file, test_file, target=target, min_precision=min_precision,
        test_fraction=test_fraction, seed=seed, preset=preset,
        mapping=parse_map(map_) or None, taxonomy=taxonomy,
        train_sizes=parse_sizes(train_sizes), finer=finer, folds=folds,
    )
    _print_report(
        report,
        as_json,
        [
            "target",
            "n_train",
            "n_test",
            "accuracy",
            "macro_f1",
            "top3_accuracy",
            "coverage",
            "covered_accuracy",
        ],
        "baseline_tfidf_linearsvc",
    )
    if not as_json:
        _print_finer(report)
        _print_cold_start(report)
        _print_cross_validation(report)


def parse_sizes(value: str) -> list[int]:
    """``"30,100,300"`` -> [30, 100, 300]; a clear error for anything else."""
    try:
        sizes = [int(part) for part in value.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserError(
            f"--train-sizes takes whole numbers separated by commas, got {value!r}") from None
    if any(n < 2 for n in sizes):
        raise UserError("--train-sizes: every size must be 2 or more")
    return sizes


def _print_finer(report: dict) -> None:
    """One line on the finer field, when one was found or given."""
    chosen = report.get("chosen_in_fit") or {}
    if chosen.get("finer_field"):
        share = float(chosen.get("finer_weight") or 0.0)
        use = (f"share {share:.1f} of the blend" if share > 0
               else "not used: it did not help out of fold")
        console.print(f"finer labels: {chosen['finer_field']} ({use})")


def _print_cross_validation(report: dict) -> None:
    """The margin over the baseline fold by fold, when the file was cross-validated."""
    cv = report.get("cross_validation")
    if not cv:
        return
    for figure in ("accuracy", "macro_f1"):
        m = cv[f"{figure}_margin"]
        folds = ", ".join(f"{100 * d:+.1f}" for d in m["per_fold"])
        console.print(f"{figure} margin over the baseline: {100 * m['mean']:+.1f} points "
                      f"(standard error {100 * m['standard_error']:.1f}; folds {folds})")
    console.print(report["split"])


def _print_cold_start(report: dict) -> None:
    """The zero-shot figures and the learning curve, when they were asked for."""
    zero, calibrated = report.get("zero_shot"), report.get("zero_shot_calibrated")
    if zero and calibrated:
        console.print(f"zero-shot ({zero['n_labels']} labels): accuracy {zero['accuracy']}, "
                      f"macro-F1 {zero['macro_f1']}, top-3 {zero['top3_accuracy']}; with no "
                      "labels it always answers unsure")
        console.print(f"zero-shot, threshold chosen on the {calibrated['calibrated_on']} "
                      "training rows: answers "
                      + _answered(calibrated["coverage"], calibrated["covered_accuracy"]))
        if zero["test_rows_with_such_labels"]:
            console.print(f"[yellow]{zero['test_rows_with_such_labels']} test rows carry labels "
                          f"the taxonomy does not name[/yellow]: "
                          + ", ".join(zero["test_labels_not_in_taxonomy"]))
    curve = report.get("learning_curve")
    if curve:
        # fits 80 columns: accuracy / macro-F1 pairs, "answered share @ its accuracy"
        columns = ["n train", "labels", "acc / mF1", "answered", "baseline acc / mF1"]
        with_zero = any("zero_shot_calibrated" in point for point in curve)
        if with_zero:
            columns.append("zero-shot answered")
        table = Table(*columns, collapse_padding=True, show_edge=False)
        for point in curve:
            if "skipped" in point:
                table.add_row(str(point["n_train"]), str(point["n_labels"]), point["skipped"])
                continue
            base = point["baseline_tfidf_linearsvc"]
            cells = [str(point["n_train"]), str(point["n_labels"]),
                     f"{point['accuracy']:.3f} / {point['macro_f1']:.3f}",
                     _answered(point["coverage"], point["covered_accuracy"]),
                     f"{base['accuracy']:.3f} / {base['macro_f1']:.3f}"]
            if with_zero:
                zs = point["zero_shot_calibrated"]
                cells.append(_answered(zs["coverage"], zs["covered_accuracy"]))
            table.add_row(*cells)
        console.print(table)


def _answered(coverage: float, covered_accuracy: float) -> str:
    return f"{coverage:.2f} @ {covered_accuracy:.2f}" if coverage else "never"


@eval_app.command("incidents")
@friendly_errors
def eval_incidents(
    history: Annotated[Path, typer.Option(help="Past incidents (JSONL, JSON or CSV).")],
    test: Annotated[Path | None, typer.Option(help="Queries; leave-one-out when absent.")] = None,
    target: Annotated[str, typer.Option(help="The label field the neighbours vote on.")] = (
        "category"),
    preset: Annotated[str | None, typer.Option(help="CSV preset: servicenow or jira.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="field=column (repeatable).")] = [],  # noqa: B006
    as_json: JsonOption = False,
) -> None:
    """Target voted by retrieved neighbours vs the true one; BM25 neighbours beside it.

    Reads files as `triagebot import` does (JSONL, JSON, CSV; --preset, --map), ids optional.
    """
    from bot.evaluation import evaluate_incidents, hit_key

    report = evaluate_incidents(history, test_file=test, target=target, preset=preset,
                                mapping=parse_map(map_) or None)
    _print_report(
        report,
        as_json,
        ["n", hit_key(target), "precision@5", "novel_rate"],
        "baseline_bm25_neighbours",
    )


@eval_app.command("grouping")
@friendly_errors
def eval_grouping(
    events: Annotated[Path, typer.Option(help="JSONL lines with text and group.")],
    as_json: JsonOption = False,
) -> None:
    """Alert/log grouping: ARI and grouping accuracy; drain3 (default settings) beside it."""
    from bot.evaluation import evaluate_grouping_file

    report = evaluate_grouping_file(events)
    if as_json:
        print_json(report)
        _warn_skipped(report)  # on stderr
        return
    table = Table("system", "n", "groups true", "groups ours", "ARI ours", "GA ours", "GA drain3")
    for system, s in report["systems"].items():
        table.add_row(
            system,
            str(s["ours"]["n"]),
            str(s["ours"]["groups_true"]),
            str(s["ours"]["groups_pred"]),
            f"{s['ours']['ari']:.3f}",
            f"{s['ours']['grouping_accuracy']:.3f}",
            f"{s['drain3']['grouping_accuracy']:.3f}",
        )
    table.add_row(
        "all",
        str(report["n"]),
        str(report["groups_true"]),
        str(report["groups_pred"]),
        f"{report['ari']:.3f}",
        f"{report['grouping_accuracy']:.3f}",
        f"{report['baseline_drain3']['grouping_accuracy']:.3f}",
    )
    console.print(table)
    _warn_skipped(report)


# --- audit ------------------------------------------------------------------------------------


@audit_app.command("export")
@friendly_errors
def audit_export(
    since: Annotated[str, typer.Option(help="ISO date, e.g. 2026-11-01")] = "1970-01-01",
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
) -> None:
    """Every answer shown, feedback click, promotion and rollback since a date."""
    from bot.store import repository as repo
    from bot.store.db import session_scope
    from bot.timeparse import parse_time

    start = parse_time(since)
    if start is None:
        raise UserError(f"--since is not an ISO date: {since!r}")
    if fmt not in {"csv", "jsonl"}:
        raise UserError("--format must be csv or jsonl")
    svc = services(models=False)
    with session_scope(svc.sessions) as session:
        rows = [
            {
                # SQLite hands back naive datetimes; every stored time is UTC.
                "at": (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)).isoformat(),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "detail": json.dumps(e.detail, default=str),
            }
            for e in repo.list_audit(session=session, since=start)
        ]
    if fmt == "jsonl":
        for row in rows:
            sys.stdout.write(json.dumps({**row, "detail": json.loads(row["detail"])}) + "\n")
    else:
        writer = csv.DictWriter(
            sys.stdout, fieldnames=["at", "actor", "action", "subject", "detail"]
        )
        writer.writeheader()
        writer.writerows(rows)


# --- jobs and drift ---------------------------------------------------------------------------


@jobs_app.command("list")
@friendly_errors
def jobs_list(as_json: JsonOption = False) -> None:
    """Known jobs with their schedules and the last runs."""
    from bot.jobs import JOBS, job_crons
    from bot.store import repository as repo
    from bot.store.db import session_scope

    svc = services(models=False)
    crons = job_crons(svc.settings)
    with session_scope(svc.sessions) as session:
        runs = repo.list_job_runs(session=session, limit=200)
        last = {}
        for r in runs:
            last.setdefault(r.name, r)
        rows = [{"job": name, "cron": crons[name], **_last_run(last.get(name))}
                for name in JOBS]
    if as_json:
        print_json(rows)
        return
    table = Table("job", "cron (UTC)", "last run", "outcome", "took", "replica")
    for r in rows:
        took = "-" if r["seconds"] is None else f"{r['seconds']:.0f} s"
        table.add_row(r["job"], r["cron"], r["last_run"] or "-", r["outcome"] or "-", took,
                      r["replica"] or "-")
    console.print(table)


def _last_run(run: Any) -> dict[str, Any]:
    """When a job last started, how it ended, how long it took and on which replica
    (``host:pid``; with several replicas, where to look for its logs)."""
    if run is None:
        return {"last_run": "", "outcome": "", "seconds": None, "replica": ""}
    seconds = (None if run.finished_at is None
               else round((run.finished_at - run.started_at).total_seconds(), 1))
    return {"last_run": run.started_at.isoformat(), "outcome": run.outcome,
            "seconds": seconds, "replica": run.holder}


@jobs_app.command("run")
@friendly_errors
def jobs_run(
    name: Annotated[str, typer.Argument(help="retrain, reindex, drift, housekeeping")],
) -> None:
    """Run one job now (under the same lease as the scheduler)."""
    from bot.jobs import JOBS, run_job

    if name not in JOBS:
        raise UserError(f"unknown job {name!r}; known: {', '.join(JOBS)}")
    svc = services()
    run = run_job(name, svc)
    if run is None:
        from bot.store.db import session_scope
        from bot.store.models import JobLease

        with session_scope(svc.sessions) as session:
            lease = session.get(JobLease, name)
            where = ""
            if lease is not None:
                until = lease.expires_at  # SQLite gives it back without a zone: UTC
                until = until.astimezone(UTC) if until.tzinfo else until
                where = f" ({lease.holder}, lease renewed until {until:%H:%M:%S} UTC)"
        console.print(f"{name} is running elsewhere{where}; not started")
        raise typer.Exit(1)
    print_json({"job": name, "outcome": run.outcome, "detail": run.detail})
    if run.outcome != "ok":
        raise typer.Exit(1)


@models_app.command("drift")
@friendly_errors
def models_drift(
    days: Annotated[int, typer.Option(min=1, help="Recent events: this many days.")] = 7,
    target: Annotated[str | None, typer.Option(help="One field (default: every target).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recent events vs training data, predicted-label mix, feedback accuracy; retrain advice."""
    from bot.drift import check_drift_all

    _check_target(target)
    reports = check_drift_all(services(), days=days, targets=[target] if target else None)
    if as_json:
        print_json(reports)
        return
    for report in reports:
        verdict = ("[yellow]retrain[/yellow]" if report.get("should_retrain")
                   else "[green]no retrain needed[/green]")
        console.print(f"[bold]{report['target']}[/bold]: {verdict} - {report.get('reason', '')}")
        for key, value in report.items():
            if key not in ("target", "should_retrain", "reason"):
                console.print(f"  {key}: {value}")


@eval_app.command("feedback")
@friendly_errors
def eval_feedback(
    corpus: CorpusOption,
    queries: QueriesOption,
    field: FieldOption = "text",
    as_json: JsonOption = False,
) -> None:
    """Relevance feedback on half the queries: hit@1 before/after on both halves."""
    from bot.evaluation_feedback import evaluate_feedback

    report = evaluate_feedback(corpus, queries, field=field)
    if as_json:
        print_json(report)
        _warn_skipped(report)  # on stderr
        return
    table = Table("queries", "n", "hit@1 before", "hit@1 after", "MRR before", "MRR after")
    for name in ("with_feedback", "without_feedback"):
        b, a = report[name]["before"], report[name]["after"]
        table.add_row(name.replace("_", " "), str(b["n"]), f"{b['hit@1']:.3f}",
                      f"{a['hit@1']:.3f}", f"{b['mrr']:.3f}", f"{a['mrr']:.3f}")
    console.print(table)
    console.print(f"simulated clicks: {report['clicks']}")
    _warn_skipped(report)
