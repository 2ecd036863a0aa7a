"""Secrets kept encrypted at rest: the organizations' webhook HMAC keys.

`SealedSecret` is what the ORM holds: the stored text, opened only by `reveal()` (the delivery
that signs), so loading an organization never decrypts anything and a missing key breaks only
the deliveries that need it. The column type refuses a plain `str`: a write that forgets to
`seal()` fails instead of storing the secret in clear.

Stored form: `fernet:<token>`, a Fernet token (AES-128-CBC + HMAC-SHA256, `cryptography`) under
the first of `WEBHOOK_SECRET_KEYS`; `MultiFernet` opens tokens of any listed key, so a key is
rotated by putting the new one first, running `certs secrets rotate`, then dropping the old one
(docs/operations.md). A value without the prefix was stored before encryption existed: it is
read as the secret itself until `certs secrets rotate` seals it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text, TypeDecorator

PREFIX = "fernet:"


class SecretUnavailable(RuntimeError):
    """A stored secret none of the configured keys opens (a key was dropped too early)."""


class SecretBox:
    """Seal with the first key, open with any (MultiFernet)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # stored in clear before encryption (until `certs secrets rotate`)
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnavailable(
                "a stored secret is sealed with a key WEBHOOK_SECRET_KEYS no longer lists"
            ) from None

    def reseal(self, stored: str) -> str:
        """The same secret under the first key (a clear legacy value gets sealed)."""
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        try:
            return PREFIX + self._fernet.rotate(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnavailable(
                "a stored secret is sealed with a key WEBHOOK_SECRET_KEYS no longer lists"
            ) from None


class _Keys:
    box: SecretBox | None = None


_keys = _Keys()


def use_keys(keys: Sequence[str]) -> None:
    """Make these the process's keys (called by `runtime.bootstrap` with the settings' keys)."""
    _keys.box = SecretBox(keys)


def box() -> SecretBox:
    if _keys.box is None:
        raise RuntimeError("secret keys not configured: call runtime.bootstrap(settings) first")
    return _keys.box


@dataclass(frozen=True)
class SealedSecret:
    """A secret as stored; `reveal()` decrypts it with the process's keys."""

    stored: str

    @classmethod
    def seal(cls, plaintext: str) -> SealedSecret:
        return cls(box().seal(plaintext))

    def reveal(self) -> str:
        return box().open(self.stored)

    @property
    def is_sealed(self) -> bool:
        return self.stored.startswith(PREFIX)

    def __repr__(self) -> str:  # never the stored text in logs or tracebacks
        return "SealedSecret(...)"


class SealedText(TypeDecorator[SealedSecret]):
    """A TEXT column holding a `SealedSecret`; binding a plain `str` is refused."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, SealedSecret):
            raise TypeError("a secret column takes SealedSecret.seal(value), never the plain text")
        return value.stored

    def process_result_value(self, value: Any, dialect: Any) -> SealedSecret | None:
        return None if value is None else SealedSecret(value)
