"""(being written) Bearer JWTs from the identity provider, checked against its JWKS."""

from __future__ import annotations

from typing import Any

from portal.settings import PortalSettings


class JwksVerifier:
    issuer: str

    @classmethod
    def from_settings(cls, settings: PortalSettings) -> JwksVerifier:
        raise NotImplementedError

    def verify(self, token: str) -> dict[str, Any]:
        raise NotImplementedError
