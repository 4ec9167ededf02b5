"""App Home: what the bot knows and how well it does; admin buttons to reindex, retrain and
roll a model back."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slack_bolt import App

from bot.classification import NotActiveError
from bot.drift import answered_by, feedback_verdicts
from bot.jobs import HOLDER, RUN_LEASE_TTL
from bot.leases import held_lease
from bot.slack.blocks import escape
from bot.slack.ids import ActionId
from bot.slack.service import SlackBot, Where
from bot.slack.views import home_view, parse_rollback_value
from bot.store import repository as repo
from bot.store.db import session_scope

log = logging.getLogger(__name__)

REFUSAL = "Only triagebot admins can do that (see TRIAGEBOT_ADMIN_USERS)."
LEASED_TASKS = ("retrain", "reindex")  # the names of their scheduled jobs (bot/jobs.py)
WATCH_DAYS = 7  # the window of the feedback figure beside each model (as the drift check)


def register(app: App, bot: SlackBot) -> None:
    @app.event("app_home_opened")
    def on_home_opened(body: dict, event: dict, context: dict) -> None:
        bot.learn_identity(body, context)
        if event.get("tab", "home") != "home":
            return
        bot.submit(
            publish_home,
            bot,
            event.get("user", ""),
            "",
            where=Where(),
            event_id=context.get("deferred_event_id"),
        )

    @app.action(ActionId.HOME_REINDEX)
    def on_reindex(ack: Any, body: dict) -> None:
        ack()
        user = (body.get("user") or {}).get("id", "")
        bot.submit(admin_task, bot, user, "reindex", where=Where())

    @app.action(ActionId.HOME_RETRAIN)
    def on_retrain(ack: Any, body: dict) -> None:
        ack()
        user = (body.get("user") or {}).get("id", "")
        bot.submit(admin_task, bot, user, "retrain", where=Where())

    @app.action(ActionId.HOME_ROLLBACK)
    def on_rollback(ack: Any, body: dict, action: dict) -> None:
        ack()
        user = (body.get("user") or {}).get("id", "")
        target, version = parse_rollback_value(str(action.get("value") or ""))
        bot.submit(admin_task, bot, user, "rollback", target, version, where=Where())


def publish_home(bot: SlackBot, user: str, notice: str = "") -> None:
    if not user:
        return
    services = bot.services()
    sizes = services.knowledge.sizes()
    models = {
        target: (loaded.version, loaded.kind, dict(loaded.metrics or {}))
        for target, loaded in dict(services.classifiers.active).items()
    }
    with session_scope(services.sessions) as session:
        feedback = repo.feedback_counts(session=session)
        recent = repo.list_feedback_with_versions(
            session=session, since=datetime.now(UTC) - timedelta(days=WATCH_DAYS))
        drift_run = next((run for run in repo.list_job_runs(session=session, name="drift",
                                                            limit=10) if run.outcome == "ok"),
                         None)
        drift = (dict(drift_run.detail or {}), drift_run.finished_at) if drift_run else ({}, None)
    watch = {target: watch_line(feedback_verdicts(answered_by(recent, target, version), target),
                                drift[0].get(target), drift[1])
             for target, (version, _kind, _metrics) in models.items()}
    view = home_view(sizes=sizes, models=models, feedback=feedback,
                     is_admin=bot.is_admin(user), notice=notice, watch=watch)
    bot.poster.call("views.publish", lambda: bot.client.views_publish(user_id=user, view=view))


def watch_line(verdicts: Sequence[bool], drift: Mapping[str, Any] | None,
               checked_at: datetime | None) -> str:
    """How a model does in use: its answers judged by feedback over the last ``WATCH_DAYS``
    days, and the last drift check's verdict for its target."""
    if verdicts:
        right = sum(verdicts)
        judged = (f"last {WATCH_DAYS} days: {right} of {len(verdicts)} of its answers judged "
                  f"by feedback were right ({right / len(verdicts):.0%})")
    else:
        judged = f"no feedback on its answers in the last {WATCH_DAYS} days"
    if not drift or checked_at is None:
        return f"{judged}; no drift check yet"
    when = f"{checked_at:%Y-%m-%d %H:%M} UTC"
    if drift.get("should_retrain"):
        return f"{judged}; :warning: drift check {when}: {drift.get('reason', '')}"
    return f"{judged}; drift check {when}: {drift.get('reason', 'no retrain needed')}"


def admin_task(bot: SlackBot, user: str, task: str, target: str = "", version: str = "") -> None:
    """Reindex runbooks, retrain models or roll one target back (from ``version``, the one
    its button showed active); admins only (checked again here: the button is only shown to
    admins, but anyone can forge the request)."""
    if not bot.is_admin(user):
        log.warning("non-admin %s tried %s from App Home", user, task)
        publish_home(bot, user, notice=f":no_entry: {REFUSAL}")
        return
    services = bot.services()
    subject = target or task
    # Retrain and reindex run under the scheduled job's lease: a second click, another
    # admin or the nightly job must not start a second run beside one that takes minutes.
    # Each click holds it under a name of its own: under one name per admin, the second
    # click of a double click took the lease its first click held and ran a second retrain.
    holder = f"slack:{user}:{HOLDER}:{secrets.token_hex(4)}"
    lease = (held_lease(services.sessions, task, holder, RUN_LEASE_TTL)
             if task in LEASED_TASKS else nullcontext(True))
    with lease as held:
        if not held:
            publish_home(bot, user, notice=f":hourglass_flowing_sand: A {task} is already "
                         "running (the scheduled job or another admin); try again once it has "
                         "finished.")
            return
        with session_scope(services.sessions) as session:
            repo.audit(session=session, actor=user, action=f"home_{task}_requested",
                       subject=subject)
        publish_home(bot, user, notice=f":hourglass_flowing_sand: {task} started by <@{user}>…")
        if task == "reindex":
            summary = reindex(bot)
        elif task == "retrain":
            summary = retrain(bot, user)
        else:
            summary = rollback(bot, user, target, version)
        with session_scope(services.sessions) as session:
            repo.audit(
                session=session,
                actor=user,
                action=f"home_{task}_done",
                subject=subject,
                detail={"summary": summary},
            )
    publish_home(bot, user, notice=summary)


def reindex(bot: SlackBot) -> str:
    services = bot.services()
    sources: dict[str, Path] = dict(bot.settings.runbook_sources)
    if not sources:
        return ":warning: Reindex: no runbook sources configured (TRIAGEBOT_RUNBOOK_SOURCES)."
    parts = []
    for name, path in sources.items():
        try:
            report = services.knowledge.index_runbooks(
                Path(path), source=name, url_template=bot.settings.runbook_urls.get(name))
        except FileNotFoundError as exc:
            parts.append(f"{name}: {exc}")
            continue
        parts.append(
            f"{name}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.removed)} removed, {len(report.unchanged)} unchanged"
        )
    return ":white_check_mark: Reindex done. " + "; ".join(parts)


def retrain(bot: SlackBot, user: str) -> str:
    services = bot.services()
    results = services.classifiers.train_all(actor=user)
    parts = []
    for r in results:
        if isinstance(r, str):
            parts.append(r)
        else:
            verdict = "promoted" if r.promoted else "kept current"
            parts.append(f"{r.target}: {verdict} ({r.reason})")
    return ":white_check_mark: Retrain done. " + "; ".join(parts)


def rollback(bot: SlackBot, user: str, target: str, expected: str = "") -> str:
    """Re-activate ``target``'s previous promoted version, when ``expected`` (if given) is
    still the active one; the notice says what happened."""
    classifiers = bot.services().classifiers
    if target not in classifiers.active:  # a forged or stale button
        return f":warning: Roll back: no model is loaded for “{escape(target[:100])}”."
    current = expected or classifiers.active[target].version
    try:
        version = classifiers.rollback(target, actor=user, expected=expected)
    except NotActiveError as exc:  # the second click of a double click, a stale App Home
        return f":information_source: Nothing rolled back: {escape(str(exc))}."
    except ValueError as exc:  # nothing earlier to go back to
        return f":warning: Roll back refused: {exc}."
    except Exception as exc:
        log.exception("roll back of %s failed", target)
        return f":x: Roll back of {target} failed: {exc.__class__.__name__}: {exc}"
    return (f":rewind: {target}: rolled back from `{current}` to `{version}` by <@{user}>. "
            "Undo: `triagebot models promote " + current + "`.")
