"""A local stand-in for the Slack Web API (stdlib HTTP server on a free loopback port).

Speaks the JSON of the methods triagebot uses, records every call (method, arguments) for
assertions, accepts ``response_url`` posts and file uploads, and can be told to answer
``429`` with ``Retry-After`` (or an API error) for the next N calls. Messages posted with
chat.postMessage (with their ``metadata``) are kept per channel, edited by chat.update, and
read back by conversations.history as Slack does: top-level messages only, newest first,
``oldest`` / ``latest`` / ``inclusive``, ``limit`` with cursor pages, and ``metadata`` only
with ``include_all_metadata``.

    fake = FakeSlackAPI().start()
    WebClient(token="xoxb-test", base_url=fake.api_url)
    fake.wait_for(lambda c: c.method == "chat.postMessage")
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A0TRIAGE"
TEAM_ID = "T0TEST"
JSON_FIELDS = ("blocks", "view", "attachments", "files", "metadata")
HISTORY_LIMIT = 100  # conversations.history: default ``limit``
HISTORY_MAX = 999  # and its largest


@dataclass
class Call:
    """One request the fake received."""

    method: str  # "chat.postMessage", ..., "response_url", "upload"
    args: dict[str, Any]
    path: str
    at: float = field(default_factory=time.monotonic)
    status: int = 200

    def blocks_text(self) -> str:
        """All text inside the call's blocks (for "does the answer mention X" assertions)."""
        return json.dumps(self.args.get("blocks") or [], ensure_ascii=False)


class FakeSlackAPI:
    def __init__(self, clock: Callable[[], float] = lambda: 1_700_000_000.0) -> None:
        """``clock``: the seconds part of the ``ts`` of new messages (Slack's clock)."""
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self.clock = clock
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages, oldest first
        self._failures: list[tuple[str | None, int, str, int]] = []  # method, status, error, n
        self.private_channels: set[str] = set()
        # apps.connections.open answers this WebSocket URL (tests/fakes/socket_mode.py)
        self.socket_mode_url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeSlackAPI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                fake._handle(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                fake._handle(self, self.rfile.read(length) if length else b"")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def response_url(self, name: str = "r") -> str:
        return f"{self.url}response/{name}"

    # --- test controls --------------------------------------------------------------------

    def rate_limit(self, n: int, *, retry_after: int = 1, method: str | None = None) -> None:
        """The next ``n`` calls (of ``method``, or any) get 429 with ``Retry-After``."""
        with self._cond:
            self._failures.append((method, 429, str(retry_after), n))

    def fail(self, method: str, error: str, n: int = 1) -> None:
        """The next ``n`` calls of ``method`` get ``{"ok": false, "error": error}``."""
        with self._cond:
            self._failures.append((method, 200, error, n))

    def reset(self) -> None:
        with self._cond:
            self.calls.clear()
            self._failures.clear()

    def top_messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's top-level messages (thread replies left out), oldest first."""
        with self._cond:
            return [dict(m) for m in self.messages.get(channel, []) if not m.get("thread_ts")]

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def wait_for(
        self, predicate: Callable[[Call], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[Call]:
        """Block until ``count`` successful calls match (bounded); returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.status == 200 and predicate(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls]
                    raise AssertionError(
                        f"expected {count} matching call(s) within {timeout}s; got "
                        f"{len(found)}; calls so far: {methods}"
                    )
                self._cond.wait(left)

    # --- request handling -------------------------------------------------------------------

    def _take_failure(self, method: str) -> tuple[int, str] | None:
        for i, (wanted, status, detail, n) in enumerate(self._failures):
            if wanted is None or wanted == method:
                if n <= 1:
                    self._failures.pop(i)
                else:
                    self._failures[i] = (wanted, status, detail, n - 1)
                return status, detail
        return None

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        args = self._parse_args(handler, raw, parts.query)
        if path.startswith("/api/"):
            method = path[len("/api/") :]
        elif path.startswith("/upload/"):
            method = "upload"
            args = {"bytes": len(raw)}
        else:
            method = "response_url"
        with self._cond:
            failure = self._take_failure(method) if method not in ("upload",) else None
            status = failure[0] if failure else 200
            self.calls.append(Call(method, args, path, status=status))
            ts = f"{int(self.clock())}.{next(self._ts):06d}"
            self._cond.notify_all()
        headers: dict[str, str] = {}
        if failure and failure[0] == 429:
            body: dict[str, Any] = {"ok": False, "error": "ratelimited"}
            headers["Retry-After"] = failure[1]
        elif failure:
            body = {"ok": False, "error": failure[1]}
        else:
            body = self._answer(method, args, ts)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _parse_args(handler: BaseHTTPRequestHandler, raw: bytes, query: str) -> dict[str, Any]:
        args: dict[str, Any] = dict(parse_qsl(query))
        content_type = handler.headers.get("content-type", "")
        if raw and "application/json" in content_type:
            try:
                loaded = json.loads(raw)
            except json.JSONDecodeError:
                loaded = {}
            if isinstance(loaded, dict):
                args.update(loaded)
        elif raw and "application/x-www-form-urlencoded" in content_type:
            args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        for name in JSON_FIELDS:
            if isinstance(args.get(name), str):
                with contextlib.suppress(json.JSONDecodeError):
                    args[name] = json.loads(args[name])
        return args

    def _answer(self, method: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://test.slack.com/",
                "team": "test",
                "user": "triagebot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            message = self._store_message(channel, args, ts)
            return {"ok": True, "channel": channel, "ts": ts, "message": _shown(message, True)}
        if method == "chat.update":
            self._edit_message(channel, args)
            return {"ok": True, "channel": channel, "ts": args.get("ts", ts)}
        if method == "conversations.history":
            return self._history(channel, args)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = dict(args.get("view") or {})
            view.setdefault("id", f"V{ts.replace('.', '')}")
            return {"ok": True, "view": view}
        if method == "apps.connections.open":
            if not self.socket_mode_url:
                return {"ok": False, "error": "socket_mode_not_enabled"}
            return {"ok": True, "url": self.socket_mode_url}
        if method == "conversations.info":
            return {
                "ok": True,
                "channel": {"id": channel, "is_private": channel in self.private_channels},
            }
        if method == "files.getUploadURLExternal":
            file_id = f"F{ts.replace('.', '')}"
            return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files") or []
            return {
                "ok": True,
                "files": [
                    {"id": f.get("id"), "title": f.get("title", "")}
                    for f in files
                    if isinstance(f, dict)
                ],
            }
        if method == "files.info":
            return {"ok": True, "file": {"id": args.get("file", "")}}
        if method in ("upload", "response_url"):
            return {"ok": True}
        return {"ok": True}

    # --- messages kept for conversations.history ------------------------------------------------

    def _store_message(self, channel: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "text": args.get("text", ""),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": ts,
        }
        for name in ("blocks", "thread_ts", "metadata"):
            if args.get(name):
                message[name] = args[name]
        with self._cond:
            self.messages.setdefault(channel, []).append(message)
        return message

    def _edit_message(self, channel: str, args: dict[str, Any]) -> None:
        """chat.update: new text and blocks; metadata is kept unless new metadata is given."""
        with self._cond:
            for message in self.messages.get(channel, []):
                if message["ts"] == args.get("ts"):
                    message["text"] = args.get("text", message["text"])
                    message["blocks"] = args.get("blocks") or []
                    if args.get("metadata"):
                        message["metadata"] = args["metadata"]
                    message["edited"] = {"user": BOT_USER_ID, "ts": message["ts"]}

    def _history(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history over the kept top-level messages, newest first."""
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        inclusive = _flag(args.get("inclusive"))
        limit = min(int(args.get("limit") or HISTORY_LIMIT), HISTORY_MAX)
        cursor = str(args.get("cursor") or "")
        if cursor:
            latest, inclusive = float(base64.b64decode(cursor).decode().split(":", 1)[1]), False
        with self._cond:
            kept = [m for m in self.messages.get(channel, []) if not m.get("thread_ts")]
        newest_first = sorted(kept, key=lambda m: float(m["ts"]), reverse=True)
        window = [m for m in newest_first if _between(float(m["ts"]), oldest, latest, inclusive)]
        page, has_more = window[:limit], len(window) > limit
        next_cursor = ""
        if has_more:
            next_cursor = base64.b64encode(f"next_ts:{page[-1]['ts']}".encode()).decode()
        with_metadata = _flag(args.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [_shown(m, with_metadata) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }


def _shown(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
    """A kept message as the Web API returns it (``metadata`` only when asked for)."""
    shown = {k: v for k, v in message.items() if k != "metadata"}
    if with_metadata and "metadata" in message:
        shown["metadata"] = message["metadata"]
    return shown


def _between(ts: float, oldest: float, latest: float, inclusive: bool) -> bool:
    return oldest <= ts <= latest if inclusive else oldest < ts < latest


def _flag(value: Any) -> bool:
    """A boolean argument: slack_sdk sends ``1`` / ``0`` in queries, JSON bodies ``true``."""
    return str(value).lower() in ("1", "true")
