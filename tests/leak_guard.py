"""Nothing a test starts may outlive it: the bot's background threads and root log handlers.

Both leaks showed only as "--- Logging error ---" blocks after the last test of a run: an
alert pipeline's flush thread outlived its test and, once the Slack stand-in it was given had
stopped, logged "chat.update failed" through a root handler that a test had installed on
pytest's capture stream, long closed by then. Here each leak fails the test whose teardown
should have ended it, naming who started it.

**Threads.** A thread the bot starts (a module of ``bot`` calls ``Thread.start``, directly or
through a thread pool or the scheduler) is charged to its owner: the fixture being set up
when it started, or the test that was running. A thread started by a method of a
:class:`~bot.server.Runtime` or :class:`~bot.workers.WorkerPool` (a session fixture's
pipeline is created by the first webhook of some test), or by another such thread, is
charged to the owner of that runtime, pool or thread. Once the owner's scope has been torn
down (a module-scoped fixture's at the end of its module), its threads get ``JOIN_SECONDS``
to end; the ones still running fail that teardown.

**Root log handlers.** A test that changes the root logger's handlers (``setup_logging``
replaces them) must put them back: a handler on a test's capture stream writes into a
closed stream for the rest of the session.

Registered as a plugin by tests/conftest.py (``pytest_configure``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

JOIN_SECONDS = 10.0  # a stopped thread may be finishing a call (a 5 s connect timeout...)
# Modules between our code and Thread.start: the thread is ours when the first frame
# outside them is in a module of ``bot``.
_VIA = ("threading", "concurrent.futures", "apscheduler")
# Methods run on behalf of the instance's owner: the threads they start are its threads.
_OWNED_METHODS = {
    ("bot.server", "Runtime"): ("start", "_boot", "start_spool", "alert_pipeline",
                                "apply_spooled"),
    ("bot.workers", "WorkerPool"): ("submit",),
}


@dataclass(frozen=True, eq=False)
class Owner:
    node: Any  # the pytest node whose teardown ends the owner's scope
    what: str

    def __str__(self) -> str:
        return self.what


_context: list[Owner] = []  # pytest's thread: fixtures being set up, inside the running test
_local = threading.local()  # .owner: while a method of an owned instance runs in a thread
_instances: weakref.WeakKeyDictionary[Any, Owner] = weakref.WeakKeyDictionary()
_threads: dict[threading.Thread, Owner] = {}
_guard = threading.Lock()
_undo: list[Callable[[], None]] = []
_root_handlers: list[logging.Handler] = []


def _owner() -> Owner | None:
    owner = getattr(_local, "owner", None)
    if owner is not None:
        return owner
    with _guard:
        owner = _threads.get(threading.current_thread())
    if owner is not None:
        return owner
    try:
        return _context[-1]
    except IndexError:  # outside fixtures and tests (or pytest's thread just left one)
        return None


def _started_by_bot(frame: Any) -> bool:
    for _ in range(12):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "")
        if not any(module == via or module.startswith(via + ".") for via in _VIA):
            return module == "bot" or module.startswith("bot.")
        frame = frame.f_back
    return False


def install() -> None:
    """Watch Thread.start and the owned classes (once per session)."""
    if _undo:
        return
    start = threading.Thread.start

    def watched_start(thread: threading.Thread) -> None:
        if _started_by_bot(sys._getframe(1)):
            owner = _owner()
            if owner is not None:
                with _guard:
                    _threads[thread] = owner
        start(thread)

    threading.Thread.start = watched_start  # type: ignore[method-assign,assignment]
    _undo.append(lambda: setattr(threading.Thread, "start", start))
    for (module_name, class_name), methods in _OWNED_METHODS.items():
        cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
        _wrap_init(cls)
        for name in methods:
            _wrap_method(cls, name)
    _root_handlers[:] = _own_root_handlers()


def uninstall() -> None:
    while _undo:
        _undo.pop()()


def _wrap_init(cls: type) -> None:
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        owner = _owner()
        if owner is not None:
            _instances[self] = owner
        original(self, *args, **kwargs)

    cls.__init__ = init  # type: ignore[misc]
    _undo.append(lambda: setattr(cls, "__init__", original))


def _wrap_method(cls: type, name: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        owner = _instances.get(self)
        if owner is None:
            return original(self, *args, **kwargs)
        before = getattr(_local, "owner", None)
        _local.owner = owner
        try:
            return original(self, *args, **kwargs)
        finally:
            _local.owner = before

    setattr(cls, name, method)
    _undo.append(lambda: setattr(cls, name, original))


@contextlib.contextmanager
def owning(node: Any, what: str) -> Iterator[None]:
    """Threads the bot starts in pytest's thread meanwhile belong to ``what``."""
    _context.append(Owner(node, what))
    try:
        yield
    finally:
        _context.pop()


def fixture_owner(fixturedef: Any, request: Any) -> tuple[Any, str]:
    node = request.node  # the node of the fixture's scope: its teardown ends the fixture
    where = getattr(node, "nodeid", "") or "the session"
    return node, f"fixture {fixturedef.argname!r} ({fixturedef.scope}) of {where}"


def check_after_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After ``item``'s teardown: fail when a thread outlives its torn-down owner, or when
    the root logger's handlers were changed and not put back."""
    problems = _outliving_threads(item, nextitem) + _changed_root_handlers()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _outliving_threads(item: pytest.Item, nextitem: pytest.Item | None) -> list[str]:
    kept = set(nextitem.listchain()) if nextitem is not None else set()
    ended = {node for node in item.listchain() if node not in kept}
    with _guard:
        for thread in [t for t, owner in _threads.items() if not t.is_alive()]:
            del _threads[thread]
        due = [(t, owner) for t, owner in _threads.items() if owner.node in ended]
    deadline = time.monotonic() + JOIN_SECONDS
    for thread, _ in due:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [(t, owner) for t, owner in due if t.is_alive()]
    with _guard:
        for thread, _ in due:
            del _threads[thread]  # reported once
    if not alive:
        return []
    lines = [f"{len(alive)} background thread(s) still running {JOIN_SECONDS:g} s after "
             "their owner's teardown (stop the runtime / pipeline / pool it started):"]
    lines += [f"  {t.name}, started by {owner}" for t, owner in alive]
    return lines


def _own_root_handlers() -> list[logging.Handler]:
    """The root logger's handlers, but pytest's own (added and removed around each phase)."""
    return [h for h in logging.getLogger().handlers
            if not type(h).__module__.startswith("_pytest.")]


def _changed_root_handlers() -> list[str]:
    now = _own_root_handlers()
    if now == _root_handlers:
        return []
    root = logging.getLogger()
    shown = ", ".join(repr(h) for h in now) or "none"
    # Put them back, so that only the test that changed them fails.
    for handler in now:
        if handler not in _root_handlers:
            root.removeHandler(handler)
    for handler in _root_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    return [f"the root logger's handlers were changed and not put back (now: {shown}); "
            "a handler on a test's capture stream logs into a closed stream later on"]


class LeakGuard:
    """The plugin: installs the watch, tells whose fixture or test runs, checks teardowns."""

    def pytest_configure(self) -> None:
        install()

    def pytest_unconfigure(self) -> None:
        uninstall()

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Iterator[Any]:
        with owning(*fixture_owner(fixturedef, request)):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        with owning(item, f"test {item.nodeid}"):
            return (yield)

    @pytest.hookimpl(trylast=True)  # after the fixtures this item no longer needs are torn down
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        check_after_teardown(item, nextitem)
