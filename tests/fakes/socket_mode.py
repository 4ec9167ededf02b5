"""A local stand-in for Slack's Socket Mode WebSocket server (stdlib only, loopback).

The FakeSlackAPI answers ``apps.connections.open`` with :attr:`FakeSocketModeServer.url`;
the app's Socket Mode client connects here. The test sends envelopes as Slack would
(:meth:`send`), reads what the client sent back (acks with their payload, :meth:`wait_for`),
and can drop the connection or ask the client to reconnect (:meth:`drop`,
:meth:`ask_to_reconnect`). Pings are answered with pongs; frames are RFC 6455 text frames.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeSocketModeServer:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # JSON text frames from the client
        self.connections = 0  # handshakes completed so far
        self._cond = threading.Condition()
        self._client: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(8)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True, name="fake-socket-mode").start()

    @property
    def url(self) -> str:
        host, port = self._server.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._server.close()
        self.drop()

    # --- what the test does --------------------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections >= count, timeout=timeout):
                raise AssertionError(f"{self.connections} of {count} connections within {timeout}s")

    def send(self, message: dict[str, Any] | str) -> None:
        """One frame to the connected client, as Slack sends envelopes."""
        text = message if isinstance(message, str) else json.dumps(message)
        with self._cond:
            client = self._client
        assert client is not None, "no client connected"
        self._send_frame(client, 0x1, text.encode())

    def envelope(self, kind: str, payload: dict[str, Any], **extra: Any) -> str:
        """Send ``payload`` in an envelope of ``kind`` (events_api, slash_commands,
        interactive); returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        accepts = kind != "events_api"
        self.send({"envelope_id": envelope_id, "type": kind, "payload": payload,
                   "accepts_response_payload": accepts, **extra})
        return envelope_id

    def ack_of(self, envelope_id: str, timeout: float = 30.0) -> dict[str, Any]:
        (ack,) = self.wait_for(lambda m: m.get("envelope_id") == envelope_id, timeout=timeout)
        return ack

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, count: int = 1,
                 timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.received if predicate(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} message(s) from the client; got "
                                         f"{len(found)}: {self.received[-5:]}")
                self._cond.wait(left)

    def drop(self) -> None:
        """Close the connection without a word (a network drop, a Slack restart)."""
        with self._cond:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def ask_to_reconnect(self) -> None:
        """What Slack sends before it recycles a connection."""
        self.send({"type": "disconnect", "reason": "refresh_requested",
                   "debug_info": {"host": "fake"}})

    # --- the server ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            headers = {}
            for line in request.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            accept = base64.b64encode(
                hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
            client.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                            ).encode())
            with self._cond:
                old, self._client = self._client, client
                self.connections += 1
                self._cond.notify_all()
            if old is not None:  # Slack keeps one connection here: the newest
                with contextlib.suppress(OSError):
                    old.close()
            self._read_frames(client)
        except (OSError, KeyError):
            return
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _read_frames(self, client: socket.socket) -> None:
        def read(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = client.recv(n - len(data))
                if not chunk:
                    raise OSError("closed")
                data += chunk
            return data

        while True:
            first, second = read(2)
            opcode, masked, length = first & 0x0F, second & 0x80, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", read(8))
            mask = read(4) if masked else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read(length)))
            if opcode == 0x9:  # ping
                self._send_frame(client, 0xA, payload)
            elif opcode == 0x8:  # close
                return
            elif opcode == 0x1:
                with contextlib.suppress(json.JSONDecodeError), self._cond:
                    self.received.append(json.loads(payload.decode()))
                    self._cond.notify_all()

    def _send_frame(self, client: socket.socket, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([127]) + struct.pack("!Q", len(payload))
        with self._send_lock:
            client.sendall(header + payload)
