"""The `triagebot` command line: serve, triage, index, import, train, models, eval, ..."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from bot.config import Settings

app = typer.Typer(
    name="triagebot",
    help="ChatOps incident and help-desk triage assistant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
index_app = typer.Typer(help="Runbook indexes.", no_args_is_help=True)
import_app = typer.Typer(help="Import past incidents and tickets.", no_args_is_help=True)
models_app = typer.Typer(
    help="Classifier versions: list, show, promote, roll back, drift.", no_args_is_help=True
)
eval_app = typer.Typer(help="Measure quality on labelled data.", no_args_is_help=True)
samples_app = typer.Typer(help="Bundled sample knowledge.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(index_app, name="index")
app.add_typer(import_app, name="import")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
app.add_typer(samples_app, name="samples")
app.add_typer(jobs_app, name="jobs")
app.add_typer(audit_app, name="audit")

PIPE_WIDTH = 10_000  # stdout width when it is not a terminal: no line is wrapped or cut


def stdout_console() -> Console:
    """Rich wraps and cuts tables at 80 columns when stdout is not a terminal; a pipe or a
    file gets whole lines instead (COLUMNS, when set, still gives the width)."""
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(width=PIPE_WIDTH if wide else None)


console = stdout_console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
SEARCH_KINDS = ("runbook", "incident", "ticket", "alert")  # runbooks, and the incident kinds
def check_visibility(value: str) -> None:
    """Refuse a visibility no channel would match (the items would be shown nowhere)."""
    from bot.slack.visibility import is_visibility

    if not is_visibility(value):
        raise UserError(f"--visibility {value}: use public, helpdesk or private:<channel id>")


VISIBILITY_HELP = ("Where answers may use it: public (every channel), helpdesk (help-desk "
                   "channels) or private:<channel id> (that channel only).")


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (drawn in a terminal only) and its ``step(done, total)``."""
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 1."""


def _say(message: str) -> None:
    """Print an error as exactly one line (driver messages often span several)."""
    line = Text.assemble(("error: ", "red"), " ".join(str(message).split()))
    err_console.print(line, soft_wrap=True)


def _settings_error(exc: SettingsError) -> str:
    """pydantic-settings' 'error parsing value for field "x" from source "EnvSettingsSource"'
    as this module's one line: which setting, and why."""
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return str(exc)
    cause = exc.__cause__
    reason = (f"not valid JSON ({cause})" if isinstance(cause, json.JSONDecodeError)
              else str(cause or exc))
    return f"invalid setting {found.group(1)}: {reason}"


def friendly_errors(func: F) -> F:
    """Turn expected failures into a one-line message and a non-zero exit, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from bot.store.db import DatabaseUnavailableError, SchemaTooNewError

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:  # `triagebot audit export | head`: the reader has enough
            # stdout's last buffered bytes would fail again at exit: send them nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (UserError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            _say(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            _say(f"invalid setting {where}: {first['msg']}")
        except SettingsError as exc:  # a map or list setting whose value is not JSON
            _say(_settings_error(exc))
        except DatabaseUnavailableError as exc:
            _say(f"database unavailable: {exc}")
        except SchemaTooNewError as exc:
            _say(str(exc))
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                _say(f"database unavailable: {exc.orig}")
            elif isinstance(exc, ValueError):
                _say(str(exc))
            else:
                logging.getLogger(__name__).debug("unexpected error", exc_info=True)
                _say(f"{exc.__class__.__name__}: {exc}")
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    return Settings()


def services(*, models: bool = True):
    from bot.app import build_services

    return build_services(load_settings(), models=models)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    from bot.logs import setup_logging

    setup_logging("DEBUG" if verbose else "WARNING", json_logs=False)


# --- serve ------------------------------------------------------------------------------


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (TRIAGEBOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TRIAGEBOT_PORT).")] = None,
    socket_mode: Annotated[bool, typer.Option(help="Use Slack Socket Mode.")] = False,
) -> None:
    """Run the HTTP server (health, metrics, Slack events, webhooks)."""
    from bot.server import run_server

    settings = load_settings()
    updates: dict[str, Any] = {}
    if host:
        updates["host"] = host
    if port:
        updates["port"] = port
    run_server(settings.model_copy(update=updates), socket_mode=socket_mode)


# --- db and samples ---------------------------------------------------------------------------


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create or upgrade the database schema (safe to re-run)."""
    from bot.store.db import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    result = upgrade(settings.resolved_database_url)
    console.print(f"database: {result.describe()}")


@db_app.command("status")
@friendly_errors
def db_status() -> None:
    """The schema's revision and this release's migrations (the revision to go back to
    before rolling back a release)."""
    from bot.store.db import schema_status

    settings = load_settings()
    for line in schema_status(settings.resolved_database_url).describe():
        console.print(f"database: {line}" if not line.startswith((" ", "*")) else line,
                      markup=False, highlight=False)


@db_app.command("downgrade")
@friendly_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(
        help="The revision to go back to: the head of the release being rolled back to.")],
) -> None:
    """Undo the newer schema migrations before rolling back to an older release (run it
    with the newer release, every replica stopped; what the newer columns held is lost)."""
    from bot.store.db import downgrade

    settings = load_settings()
    result = downgrade(settings.resolved_database_url, revision)
    console.print(f"database: {result.describe()}")


@samples_app.command("load")
@friendly_errors
def samples_load(
    if_empty: Annotated[bool, typer.Option(help="Only when the database holds nothing.")] = False,
) -> None:
    """Index the bundled sample runbooks and incidents and train the first models."""
    from bot.samples import database_is_empty, load_samples

    svc = services(models=False)
    if if_empty and not svc.settings.load_samples:
        console.print("sample knowledge: TRIAGEBOT_LOAD_SAMPLES is false, nothing loaded")
        return
    if if_empty and not database_is_empty(svc):
        console.print("sample knowledge: database already holds knowledge, nothing loaded")
        return
    from bot.app import load_models

    load_models(svc)
    result = load_samples(svc, if_empty=if_empty)
    if not result.loaded:  # another replica loaded them meanwhile
        console.print(f"sample knowledge: {result.reason}, nothing loaded")
        return
    console.print(
        f"sample knowledge loaded: {result.runbooks} runbooks, {result.incidents} incidents"
    )


# --- triage and search ------------------------------------------------------------------------


@app.command()
@friendly_errors
def triage(
    text: Annotated[str | None, typer.Argument(help="Alert or problem text.")] = None,
    alert: Annotated[Path | None, typer.Option(help=(
        "An Alertmanager alert, notification or list of alerts (JSON); each alert is "
        "triaged."))] = None,
    ticket: Annotated[Path | None, typer.Option(help=(
        "A ticket record or list of records (JSON); each is triaged."))] = None,
    as_json: Annotated[bool, typer.Option("--json", help=(
        "Print one JSON object (a list of them when the file holds several)."))] = False,
) -> None:
    """Triage a text, an alert or a ticket: labels, similar incidents, runbook, suggestions."""
    from bot import sanitize
    from bot.answers import record_answer
    from bot.cli_input import events_from_cli
    from bot.render_text import render_links, render_triage

    # The input is redacted as it is read: with the settings' patterns, not the defaults
    # (services() configures them too, but only after the events were made).
    settings = load_settings()
    sanitize.configure(settings.redact_extra_patterns, redact_pii=settings.redact_pii)
    events, total = events_from_cli(text=text, alert=alert, ticket=ticket)
    svc = services()
    results = []
    for n, event in enumerate(events, 1):
        result = svc.assistant.triage(event)
        record_answer(svc.sessions, event=event, triage=result, surface="cli")
        # the alert's or ticket's own pages (graph, runbook, dashboard...) beside the answer
        results.append({**result.to_dict(), "links": event.links} if event.links
                       else result.to_dict())
        if not as_json:
            if total > 1:
                heading = f"{n} of {total}: {event.title or event.text}"[:200]
                console.rule(Text(heading), align="left", style="dim")
            render_links(console, event.links, str(event.kind))
            render_triage(console, result)
    if as_json:
        print_json(results if total > 1 else results[0])
    if total > len(events):
        what = "alerts" if alert else "records"
        err_console.print(f"{alert or ticket} holds {total} {what}; triaged the first "
                          f"{len(events)} (the webhook takes a whole storm)", markup=False)


@app.command()
@friendly_errors
def search(
    text: Annotated[str, typer.Argument(help="What to look for.")],
    kind: Annotated[str, typer.Option(
        help=f"Only this kind: {', '.join(SEARCH_KINDS)} (all by default).")] = "",
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many results.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Hybrid search over runbooks and past incidents."""
    from bot.render_text import render_hits

    if kind and kind not in SEARCH_KINDS:
        raise UserError(f"--kind {kind}: not a kind; use one of {', '.join(SEARCH_KINDS)}")
    if not text.strip():
        raise UserError("the search text is empty")
    svc = services()
    hits = svc.assistant.search(text.strip(), kind=kind or None, k=k)
    if as_json:
        print_json(hits)
    else:
        render_hits(console, hits)


# --- indexing and import ----------------------------------------------------------------------


@index_app.command("runbooks")
@friendly_errors
def index_runbooks(
    path: Annotated[Path, typer.Argument(help="Folder of Markdown, HTML or text runbooks.")],
    source: Annotated[str, typer.Option(help="Name of this runbook source.")] = "",
    visibility: Annotated[str, typer.Option(help=VISIBILITY_HELP)] = "public",
    url: Annotated[str | None, typer.Option(help=(
        "Where the runbooks are read in a browser, linked from answers: a template such as "
        "https://github.com/acme/runbooks/blob/main/{path} (also {path_noext}, {stem}, {dir}, "
        "{stem_lower}, {path_noext_lower}). Default: TRIAGEBOT_RUNBOOK_URLS for this source, "
        "else the addresses stored before; --url '' removes them. A runbook's front matter "
        "url: wins."))] = None,
) -> None:
    """Index a runbook folder (incremental; removes files that disappeared)."""
    if path.is_file():
        raise UserError(f"{path}: not a folder (index runbooks takes a folder of runbooks)")
    if not path.is_dir():
        raise UserError(f"runbook folder not found: {path}")
    check_visibility(visibility)
    from knowledge.runbook_urls import UrlTemplateError, check_template

    source = source or path.resolve().name
    if len(source) > 200:
        raise UserError(f"--source is {len(source)} characters long, at most 200 fit "
                        "(name the source with --source)")
    if url is None:
        url = load_settings().runbook_urls.get(source)  # None: keep the stored addresses
    try:
        template = None if url is None else check_template(url)
    except UrlTemplateError as exc:
        raise UserError(str(exc)) from exc
    svc = services()
    with progress_bar("embedding sections") as step:
        report = svc.knowledge.index_runbooks(
            path, source=source, visibility=visibility, progress=step, url_template=template
        )
    console.print(
        f"runbooks: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {len(report.unchanged)} unchanged, "
        f"{len(report.skipped)} skipped"
    )
    for skipped_path, reason in report.skipped:
        console.print(f"  skipped {skipped_path}: {reason}")


@index_app.command("rebuild")
@friendly_errors
def index_rebuild() -> None:
    """Re-embed everything from the database (after an embedding model change)."""
    svc = services()
    svc.knowledge.rebuild()
    console.print(f"indexes rebuilt: {svc.knowledge.sizes()}")


@index_app.command("status")
@friendly_errors
def index_status() -> None:
    """Show index sizes and the embedding model."""
    svc = services()
    print_json(
        {
            "model": svc.embedder.model_name,
            "sizes": svc.knowledge.sizes(),
            "version": svc.knowledge.version,
        }
    )


def parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--map expects field=column, got {item!r}")
        key, value = item.split("=", 1)
        mapping[key.strip()] = value.strip()
    return mapping


def _import(kind: str, file: Path, preset: str | None, mapping: list[str], visibility: str,
            train: bool = True) -> None:
    from knowledge.records import read_records

    check_visibility(visibility)
    result = read_records(file, preset=preset, mapping=parse_map(mapping) or None)
    if not result.records:  # refused before the database is opened: nothing to do there
        if not result.errors:
            raise UserError(f"{file}: no {kind}s in the file (it holds no rows)")
        first = result.errors[0]
        raise UserError(f"{file}: none of its {len(result.errors)} rows could be read "
                        f"(line {first.line}: {first.message})")
    if result.extra_columns:
        console.print(extra_columns_line(result.extra_columns), markup=False, soft_wrap=True)
    svc = services()
    with progress_bar(f"importing {kind}s") as step:
        report = svc.knowledge.import_records(
            result.records, kind=kind, source_name=file.name, visibility=visibility,
            progress=step,
        )
    console.print(
        f"{kind}s: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(result.errors)} bad rows skipped"
    )
    for error in result.errors[:50]:
        console.print(f"  line {error.line}: {error.message}")
    if len(result.errors) > 50:
        console.print(f"  ... and {len(result.errors) - 50} more")
    if train and (report.added or report.updated):
        _train_cold_targets(svc)


def extra_columns_line(columns: tuple[str, ...], shown: int = 20) -> str:
    """The columns no record field reads, which the import keeps as extra labels."""
    names = ", ".join(columns[:shown])
    more = f" and {len(columns) - shown} more" if len(columns) > shown else ""
    return (f"not record fields, kept as extra labels (use --map field=column to read one as "
            f"a field): {names}{more}")


def _train_cold_targets(svc: Any) -> None:
    """First supervised models for the targets the import gave enough labels to."""
    for outcome in svc.classifiers.train_cold_targets(actor="import"):
        if not isinstance(outcome, str):  # a string: still too few labels, zero-shot stays
            console.print(train_outcome_line(outcome))


def train_outcome_line(outcome: Any) -> str:
    """One line per trained challenger: version, verdict, held-out figures, reason."""
    verdict = "[green]promoted[/green]" if outcome.promoted else "[yellow]rejected[/yellow]"
    ch = outcome.challenger
    return (f"{outcome.target}: {outcome.version} {verdict} (accuracy {ch['accuracy']:.3f}, "
            f"macro-F1 {ch['macro_f1']:.3f}) - {outcome.reason}")


IMPORT_FILE_HELP = "JSONL, JSON, CSV or TSV file, optionally .gz (docs/importing.md)."


@import_app.command("incidents")
@friendly_errors
def import_incidents(
    file: Annotated[Path, typer.Argument(help=IMPORT_FILE_HELP)],
    preset: Annotated[str | None, typer.Option(help="CSV preset: servicenow or jira.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="field=column (repeatable).")] = [],  # noqa: B006
    visibility: Annotated[str, typer.Option(help=VISIBILITY_HELP)] = "public",
    train: Annotated[bool, typer.Option(
        help="Train the first model of each target that now has enough labels.")] = True,
) -> None:
    """Import resolved incidents (JSONL record format, or CSV with a preset or --map)."""
    _import("incident", file, preset, map_, visibility, train)


@import_app.command("tickets")
@friendly_errors
def import_tickets(
    file: Annotated[Path, typer.Argument(help=IMPORT_FILE_HELP)],
    preset: Annotated[str | None, typer.Option(help="CSV preset: servicenow or jira.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="field=column (repeatable).")] = [],  # noqa: B006
    visibility: Annotated[str, typer.Option(help=VISIBILITY_HELP)] = "public",
    train: Annotated[bool, typer.Option(
        help="Train the first model of each target that now has enough labels.")] = True,
) -> None:
    """Import solved tickets (JSONL record format, or CSV with a preset or --map)."""
    _import("ticket", file, preset, map_, visibility, train)


def main() -> None:
    """Console-script entry point."""
    from bot import cli_commands  # registers train/models/eval/jobs/audit

    # Through cli_commands: under `python -m bot.cli` this module is __main__, and the
    # commands are registered on the app of the imported `bot.cli`.
    cli_commands.app()


if __name__ == "__main__":
    main()
