"""Settings of the portal (env prefix ``GPUPOOL_``) in groups by meaning: the web server, sign-in,
package uploads; ``PortalSettings`` takes them with the scheduler's.

With no identity provider configured (the embedded default) the web pages also accept sign-in
with a personal access token or the admin token, so ``make run`` gives a usable portal. Once an
identity provider is configured that is refused unless ``GPUPOOL_TOKEN_SIGN_IN=true``.
"""

from __future__ import annotations

from pydantic import Field

from quotas.packages import StorageQuota
from quotas.settings import Group
from scheduler.settings import SchedulerSettings


class WebSettings(Group):
    """Where the portal listens and what a request may carry."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Where browsers reach the portal; default http://host:port"
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="Largest JSON request body")
    run_scheduler: bool = Field(default=True, description="serve also runs the scheduler loop")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Portal processes sharing the port; the first accepts every connection and "
        "deals them out in turn",
    )
    request_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Requests a portal process works on at once (its database connections)",
    )
    access_log: bool = Field(default=True, description="Log every request")
    timezone: str = Field(
        default="Asia/Seoul",
        description="The IANA time zone the pages show times in (the API answers in UTC)",
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class IdentitySettings(Group):
    """Who may sign in, and how: an OIDC identity provider, tokens, browser sessions."""

    oidc_issuer: str | None = Field(default=None, description="The identity provider's issuer URL")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_audience: str | None = Field(
        default=None, description="Audience API bearer JWTs must carry; default the client id"
    )
    oidc_groups_claim: str = "groups"
    oidc_scopes: str = "openid profile email"
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    token_sign_in: bool | None = Field(
        default=None,
        description="Accept tokens on the sign-in page; default: only with no identity provider",
    )
    session_secret: str | None = Field(
        default=None, description="Signs browser sessions; default a key kept in the data directory"
    )

    @property
    def accepts_token_sign_in(self) -> bool:
        if self.token_sign_in is not None:
            return self.token_sign_in
        return self.oidc_issuer is None


class PackageUploadSettings(Group):
    """Uploaded packages (working_dir zips through the Ray API): size, and storage quotas."""

    max_package_bytes: int = Field(
        default=100 << 20, gt=0, description="Largest working_dir upload through the Ray API"
    )
    package_quota_bytes: int = Field(
        default=1 << 30, gt=0, description="Bytes of packages each project may keep in all"
    )
    package_pool_bytes: int = Field(
        default=20 << 30, gt=0, description="Bytes of packages the whole pool may keep in all"
    )

    @property
    def package_quota(self) -> StorageQuota:
        return StorageQuota(self.package_quota_bytes, self.package_pool_bytes)


class PortalSettings(SchedulerSettings, WebSettings, IdentitySettings, PackageUploadSettings):
    """What ``gpupool serve`` takes: the scheduler's groups (it runs the loop too) and the
    portal's."""
