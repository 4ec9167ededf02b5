"""A local stand-in for the Slack Web API (stdlib HTTP server on a free loopback port).

Speaks the JSON of the methods triagebot uses, records every call (method, arguments) for
assertions, accepts ``response_url`` posts and file uploads, and can be told to answer
``429`` with ``Retry-After`` (or an API error) for the next N calls.

    fake = FakeSlackAPI().start()
    WebClient(token="xoxb-test", base_url=fake.api_url)
    fake.wait_for(lambda c: c.method == "chat.postMessage")
"""

from __future__ import annotations

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
TEAM_ID = "T0TEST"
JSON_FIELDS = ("blocks", "view", "attachments", "files")


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
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self._failures: list[tuple[str | None, int, str, int]] = []  # method, status, error, n
        self.private_channels: set[str] = set()
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
            ts = f"1700000000.{next(self._ts):06d}"
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
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {
                    "type": "message",
                    "text": args.get("text", ""),
                    "ts": ts,
                    "bot_id": BOT_ID,
                    "user": BOT_USER_ID,
                },
            }
        if method == "chat.update":
            return {"ok": True, "channel": channel, "ts": args.get("ts", ts)}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = dict(args.get("view") or {})
            view.setdefault("id", f"V{ts.replace('.', '')}")
            return {"ok": True, "view": view}
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
