"""No stored row, index file, Slack post or log line holds a secret from a triaged message."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from bot.logs import setup_logging
from bot.store.db import session_scope
from knowledge.records import Record
from tests.intake_http.test_webhooks import alert, notification, post

AWS_KEY = "AKIAFAKEFAKEFAKE7Q2Z"
SLACK_TOKEN = "xoxb-1234567890-0987654321-FAKEfakeFAKEfake1234"
GH_TOKEN = "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake1234"
DB_PASSWORD = "S3cr3t-FAKE-pw!"
EMAIL = "jane.doe@example.com"
SECRETS = (AWS_KEY, SLACK_TOKEN, GH_TOKEN, DB_PASSWORD, EMAIL)


def dump_database(services) -> str:
    """Every text value of every table, as one string."""
    chunks = []
    with session_scope(services.sessions) as session:
        tables = session.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table'")
        ).scalars()
        for table in list(tables):
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


def dump_files(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@contextmanager
def served_logging(level: str) -> Iterator[None]:
    """setup_logging as `triagebot serve` calls it, undone afterwards: its handler writes to
    this test's capture stream, which is closed once the test is over."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    loggers = [root, *(lg for lg in root.manager.loggerDict.values()
                       if isinstance(lg, logging.Logger))]
    levels = [(lg, lg.level) for lg in loggers]
    setup_logging(level)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for lg, old in levels:
            lg.setLevel(old)


def test_secrets_never_reach_storage_indexes_slack_or_logs(harness, fake, capfd) -> None:
    client, services, pipeline = harness
    fake.reset()
    with served_logging("INFO"):
        leaky = alert(
            "BackupUploadFailed",
            "backup-01",
            service="backup",
            aws_access_key_id=AWS_KEY,
        )
        leaky["annotations"]["description"] = (
            f"upload to s3 failed with key {AWS_KEY}; url"
            f" postgres://backup:{DB_PASSWORD}@db-01/prod notify {EMAIL}; slack token {SLACK_TOKEN}"
        )
        assert post(client, notification([leaky], group_key="leak")).status_code == 202
        assert pipeline().wait_idle()
        fake.wait_for(lambda c: c.method == "chat.postMessage")
        services.knowledge.import_records(
            [
                Record(
                    id="INC-LEAK-1",
                    source="incident",
                    title="Deploy failed: bad GitHub token",
                    description=f"CI could not push, token {GH_TOKEN} was revoked",
                    root_cause=f"The token {GH_TOKEN} expired; owner {EMAIL}",
                    resolution="Rotated the token in the CI secret store.",
                    category="errors",
                )
            ],
            kind="incident",
            source_name="test",
        )
        logging.getLogger("triagebot.test").warning(
            "while handling %s for %s", SLACK_TOKEN, EMAIL
        )

        stored = dump_database(services)
        index_bytes = dump_files(services.settings.index_dir)
        posted = "\n".join(str(c.args) for c in fake.calls)
        logged = "".join(capfd.readouterr())
        assert "REDACTED" in stored and "REDACTED" in logged
        for secret in SECRETS:
            assert secret not in stored, f"{secret} stored in the database"
            assert secret.encode() not in index_bytes, f"{secret} in an index file"
            assert secret not in posted, f"{secret} posted to Slack"
            assert secret not in logged, f"{secret} in a log line"
