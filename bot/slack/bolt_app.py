"""Build the Bolt ``App``: listeners per surface, event-id dedupe, the global error handler."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

from bot.metrics import EVENTS
from bot.slack import commands, errors, feedback, home, messages
from bot.slack.client import SlackPoster, make_web_client
from bot.slack.service import SlackBot
from bot.spool import is_database_down

log = logging.getLogger(__name__)
BOLT_LOG = logging.getLogger("bot.slack.bolt")


class _DropTokenSkipped(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, given our client as
    well, warns "As you gave `client` as well, `token` will be unused." at every start, which
    reads as if the bot token were ignored. The client carries that very token: drop the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


BOLT_LOG.addFilter(_DropTokenSkipped())


def build_bolt_app(runtime: Any, *, client: WebClient | None = None) -> tuple[App, SlackBot]:
    """The Bolt app and its shared :class:`SlackBot` (no network call at construction)."""
    settings = runtime.settings
    if not settings.slack_enabled:
        raise RuntimeError("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    client = client or make_web_client(settings.slack_bot_token, settings.slack_api_url)
    # The token travels in ``client`` (Bolt takes it from there; passing both only warns,
    # and so does SLACK_BOT_TOKEN in the environment: see _DropTokenSkipped).
    app = App(
        signing_secret=settings.slack_signing_secret,
        client=client,
        process_before_response=False,
        token_verification_enabled=False,
        request_verification_enabled=True,
        logger=BOLT_LOG,
    )
    bot = SlackBot(runtime, SlackPoster(client))

    @app.middleware
    def dedupe_events(body: dict, context: Any, next: Any) -> Any:
        """A retried event (same event_id) is acknowledged and not handled again.

        While models still load, the database is not open yet, and while it is unreachable
        it cannot be written: the id is then checked on the worker thread before any work
        (``context["deferred_event_id"]``), where a message or mention is spooled when the
        database is still down.
        """
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            if not runtime.ready.is_set():
                context["deferred_event_id"] = str(event_id)
            else:
                try:
                    seen_before = not bot.mark_event_seen(str(event_id))
                except Exception as exc:
                    if not is_database_down(exc):
                        raise
                    context["deferred_event_id"] = str(event_id)
                    seen_before = False
                if seen_before:
                    EVENTS.labels(source="slack", outcome="retry_ignored").inc()
                    return BoltResponse(status=200, body="")
        return next()

    messages.register(app, bot)
    commands.register(app, bot)
    feedback.register(app, bot)
    home.register(app, bot)
    errors.register(app, bot)
    return app, bot
