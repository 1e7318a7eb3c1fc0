"""gpupool's objects on a cluster as the cluster last said, kept by watches: a cycle reads where
every launch stands without asking the API server.

One thread per kind lists the kind once and watches it from the list's resourceVersion,
applying each event as it comes. A watch that ends (its timeout, a dropped connection) resumes
from the last resourceVersion seen; one the server no longer remembers (410 Gone) starts over
with a list, as does each kind every ``resync_seconds``, so a missed event heals. Until every
kind has been listed the mirror is not ``synced`` and its reader asks the server instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

Manifest = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name)"""

GONE = 410


class Expired(Exception):
    """The server no longer has the events since our resourceVersion."""


class Mirror:
    """The objects of each kind in ``sources`` (a list call per kind, taking the client's
    keyword arguments) that match ``selector``."""

    def __init__(
        self,
        sources: Mapping[str, Callable[..., Any]],
        selector: str,
        resync_seconds: float = 300.0,
        watch_seconds: int = 60,
        retry_seconds: float = 2.0,
    ) -> None:
        self.sources = dict(sources)
        self.selector = selector
        self.resync_seconds = resync_seconds
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self._objects: dict[str, dict[Key, Manifest]] = {kind: {} for kind in sources}
        self._listed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._answers: dict[str, Any] = {}
        self._threads = [
            threading.Thread(
                target=self._keep, args=(kind,), name=f"gpupool-watch-{kind}", daemon=True
            )
            for kind in self.sources
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, seconds: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            answers = list(self._answers.values())
        for answer in answers:  # end the watches now rather than at their timeout
            connection = getattr(answer, "connection", None)
            with contextlib.suppress(AttributeError, OSError):  # gone already: ended anyway
                # shutting the socket down wakes the thread reading it (closing would wait)
                connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        for thread in self._threads:
            if thread.is_alive():
                thread.join(seconds)

    @property
    def synced(self) -> bool:
        with self._lock:
            return len(self._listed) == len(self.sources)

    def objects(self, kind: str) -> list[Manifest]:
        with self._lock:
            return list(self._objects[kind].values())

    # -- one kind ------------------------------------------------------------------------

    def _keep(self, kind: str) -> None:
        version: str | None = None
        listed_at = 0.0
        while not self._stop.is_set():
            try:
                if version is None or time.monotonic() - listed_at > self.resync_seconds:
                    version = self._list(kind)
                    listed_at = time.monotonic()
                version = self._watch(kind, version)
            except Expired:
                version = None
            except Exception as error:  # any failure: wait, then list again
                if self._stop.is_set():
                    return
                log.warning(
                    "watching %s: %s; listing again in %.0f s", kind, error, self.retry_seconds
                )
                version = None
                self._stop.wait(self.retry_seconds)

    def _list(self, kind: str) -> str:
        answer = self.sources[kind](label_selector=self.selector, _preload_content=False)
        body = json.loads(answer.data)
        objects = {_key(item): item for item in body.get("items") or []}
        with self._lock:
            self._objects[kind] = objects
            self._listed.add(kind)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, kind: str, version: str) -> str:
        """Apply events from ``version`` until the watch ends; the last version seen."""
        answer = self.sources[kind](
            label_selector=self.selector,
            watch=True,
            resource_version=version,
            timeout_seconds=self.watch_seconds,
            allow_watch_bookmarks=True,
            _preload_content=False,
        )
        with self._lock:
            self._answers[kind] = answer
        try:
            for line in iter_resp_lines(answer):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                item = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if item.get("code") == GONE:
                        raise Expired
                    raise ApiException(status=item.get("code"), reason=item.get("message"))
                version = str(item.get("metadata", {}).get("resourceVersion") or version)
                if event.get("type") == "BOOKMARK":
                    continue
                with self._lock:
                    if event.get("type") == "DELETED":
                        self._objects[kind].pop(_key(item), None)
                    else:
                        self._objects[kind][_key(item)] = item
        finally:
            with self._lock:
                self._answers.pop(kind, None)
            answer.release_conn()
        return version


def _key(item: Manifest) -> Key:
    metadata = item.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
