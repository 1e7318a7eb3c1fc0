"""A small typed client of gpupool's REST API, and where it finds its URL and token.

``Api`` sends ``Authorization: Bearer <token>`` to ``<url>/api/v1``; an error answer becomes
``ApiError(status, detail)`` read from the problem document, and a portal that does not answer
becomes ``Unreachable``. The ``httpx.Client`` is injectable: tests pass a starlette
``TestClient`` (an ``httpx.Client`` over the app) instead of a network connection.

Credentials come from, in order: ``GPUPOOL_URL``/``GPUPOOL_TOKEN``; what ``gpupool login``
stored in ``$GPUPOOL_CONFIG_DIR/credentials.json`` (default ``~/.config/gpupool``, mode 0600);
else, for ``make run`` on this machine, the admin token that ``gpupool serve`` keeps in
``<data dir>/admin.token`` (``GPUPOOL_DATA_DIR``, default ``.gpupool``), with the URL that
server recorded beside it (``portal.servers``; ``http://127.0.0.1:8000`` if none); else the
admin token and URL of the server this user started last on this machine
(``$GPUPOOL_CONFIG_DIR/servers.json``). Where no URL is given, a token is sent to that server
too. When the portal does not answer, the error says where its URL came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from portal.servers import ServerRecord, registered, server_in
from quotas.settings import write_private

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
CREDENTIALS_FILE = "credentials.json"
TIMEOUT = httpx.Timeout(30.0)
STREAM_TIMEOUT = httpx.Timeout(30.0, read=None)

Params = Mapping[str, str | int | Sequence[str] | None]


class ApiError(Exception):
    """The portal answered with an error; ``detail`` is its problem document's explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Unreachable(Exception):
    """No answer from the portal at all: not running, wrong URL, or the network is down."""

    def __init__(self, url: str, cause: str, source: str | None = None) -> None:
        came = f" (from {source})" if source else ""
        super().__init__(
            f"cannot reach the portal at {url}{came}: is `gpupool serve` running? ({cause})"
        )
        self.url = url


class NotSignedIn(Exception):
    """No token to send: nothing in the environment, no stored credentials, no admin token."""


class ClientSettings(BaseSettings):
    """Where the client looks for its portal and token (env prefix ``GPUPOOL_``)."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="ignore")

    url: str | None = Field(default=None, description="The portal's address")
    token: str | None = Field(default=None, description="A personal access token")
    config_dir: Path = Field(default_factory=lambda: Path.home() / ".config" / "gpupool")
    data_dir: Path = Path(".gpupool")

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / CREDENTIALS_FILE

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str
    source: str
    """Where they came from, to say so when the portal refuses them."""
    found_at: str | None = None
    """Where the URL was found, when no one gave it: a record ``gpupool serve`` left."""


def stored_credentials(settings: ClientSettings) -> Credentials | None:
    path = settings.credentials_file
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise NotSignedIn(f"cannot read {path}: {error}; run `gpupool login` again") from error
    if not isinstance(found, dict) or not found.get("url") or not found.get("token"):
        raise NotSignedIn(f"{path} holds no url and token; run `gpupool login` again")
    return Credentials(str(found["url"]), str(found["token"]), str(path))


def store_credentials(settings: ClientSettings, url: str, token: str) -> Path:
    """Write ``{url, token}`` readable by the owner only (0600, in a 0700 directory)."""
    path = settings.credentials_file
    write_private(path, json.dumps({"url": url, "token": token}))
    return path


def forget_credentials(settings: ClientSettings) -> bool:
    """Remove the stored credentials; False if there were none."""
    try:
        settings.credentials_file.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_credentials(settings: ClientSettings) -> Credentials:
    """The URL and token to use, in the documented order; raises ``NotSignedIn``, or
    ``Unreachable`` when the only server found has stopped."""
    if settings.token:
        stored = stored_credentials(settings)
        if settings.url or stored:
            url = settings.url or (stored.url if stored else DEFAULT_URL)
            return Credentials(url, settings.token, "GPUPOOL_TOKEN")
        found = _last_server(settings)
        if found is not None:
            record, _ = found
            where = f"{_registry(settings)}: {record.describe()}"
            return Credentials(record.url, settings.token, "GPUPOOL_TOKEN", where)
        return Credentials(DEFAULT_URL, settings.token, "GPUPOOL_TOKEN")
    stored = stored_credentials(settings)
    if stored is not None and (settings.url is None or same_url(settings.url, stored.url)):
        return stored
    admin = settings.admin_token_file
    token = _admin_token(admin)
    if token:
        if settings.url:
            return Credentials(settings.url, token, str(admin))
        written = server_in(settings.data_dir)
        if written is None:
            return Credentials(DEFAULT_URL, token, str(admin))
        record = written
        where = f"{settings.data_dir / 'server.json'}, written by gpupool serve (pid {record.pid})"
        if not record.running:
            raise Unreachable(record.url, "that gpupool serve is no longer running", where)
        return Credentials(record.url, token, str(admin), where)
    if settings.url is None and "data_dir" not in settings.model_fields_set:
        found = _last_server(settings)
        if found is not None and found[1]:
            record, token = found
            where = f"{_registry(settings)}: {record.describe()}"
            return Credentials(record.url, token, str(Path(record.data_dir) / "admin.token"), where)
    raise NotSignedIn(_not_signed_in(settings))


def _admin_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _registry(settings: ClientSettings) -> str:
    return str(settings.config_dir / "servers.json")


def _last_server(settings: ClientSettings) -> tuple[ServerRecord, str] | None:
    """The server this user started last that still runs, with its admin token if this user
    may read it ("" if not)."""
    for record in registered(settings.config_dir):
        if record.running and server_in(Path(record.data_dir)) == record:
            return record, _admin_token(Path(record.data_dir) / "admin.token")
    return None


def _not_signed_in(settings: ClientSettings) -> str:
    """Why no credentials were found, naming every server record that was tried."""
    message = "not signed in: run `gpupool login` (or set GPUPOOL_URL and GPUPOOL_TOKEN)"
    tried = [
        f"{record.describe()}: "
        + ("no longer running" if not record.running else "its admin token is not readable")
        for record in registered(settings.config_dir)
    ]
    if tried:
        message += f"; servers in {_registry(settings)}: " + "; ".join(tried)
    return message


def same_url(one: str, other: str) -> bool:
    return one.rstrip("/") == other.rstrip("/")


def problem_detail(response: httpx.Response) -> str:
    """What went wrong, from a problem document, else from the body or the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
        if isinstance(detail, str) and detail:
            return detail
        if detail:
            return json.dumps(detail)
    text = response.text.strip()
    return text[:500] if text else f"{response.status_code} {response.reason_phrase}"


class Api:
    """gpupool's REST API for one principal: JSON in, JSON (or text) out, errors raised."""

    def __init__(
        self, url: str, token: str, http: httpx.Client | None = None, source: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.source = source
        """Where the URL came from, said when the portal does not answer."""
        self._owned = http is None
        self.http = http if http is not None else httpx.Client(base_url=self.url, timeout=TIMEOUT)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _send(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        try:
            response = self.http.request(
                method,
                API_PREFIX + path,
                params=_query(params),
                json=body,
                headers=self._headers,
            )
        except httpx.TransportError as error:
            raise Unreachable(self.url, str(error) or type(error).__name__, self.source) from error
        if response.is_error:
            raise ApiError(response.status_code, problem_detail(response))
        return response

    def get(self, path: str, params: Params | None = None) -> Any:
        return self._send("GET", path, params).json()

    def get_text(self, path: str, params: Params | None = None) -> str:
        return self._send("GET", path, params).text

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._send("POST", path, body=body if body is not None else {}).json()

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._send("PATCH", path, body=body).json()

    def put(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._send("PUT", path, body=body).json()

    def delete(self, path: str) -> None:
        self._send("DELETE", path)

    def stream_text(self, path: str) -> Iterator[str]:
        """The body as it arrives, for answers that stay open (a job's logs while it runs)."""
        try:
            with self.http.stream(
                "GET", API_PREFIX + path, headers=self._headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(response.status_code, problem_detail(response))
                yield from response.iter_text()
        except httpx.TransportError as error:
            raise Unreachable(self.url, str(error) or type(error).__name__, self.source) from error


def _query(params: Params | None) -> dict[str, str | int | list[str]]:
    """Query parameters without the unset ones; a sequence repeats its key."""
    query: dict[str, str | int | list[str]] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        query[key] = value if isinstance(value, str | int) else list(value)
    return query
