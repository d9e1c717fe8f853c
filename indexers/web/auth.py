"""Local users, API tokens and session cookies of the web app.

* The users file (``settings.web.users_file``, JSON, written atomically with mode 0600) holds, per user,
  an scrypt hash of the password (``scrypt$N$r$p$salt$hash``, base64) and the SHA-256 of each API token.
  Nothing in it can be turned back into a password or a token.
* API tokens are 32 random bytes (``ssk_<id>_<secret>``), shown once by ``sipscope users token NAME``
  and sent as ``Authorization: Bearer <token>``. They are high-entropy, so a fast hash is enough.
* Sessions are signed cookies (itsdangerous, HMAC-SHA1 over a timestamped payload ``{u, e}``) with the
  key from ``settings.web.secret_key`` or, when unset, one generated once and kept in ``secret_file``.
  ``e`` is the user's session epoch: changing the password or removing the user ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from sipscope.settings import WebSettings

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
_SCRYPT = (2**14, 8, 1)  # N, r, p: ~16 MiB and ~50 ms per check
COOKIE = "sipscope_session"
TOKEN_PREFIX = "ssk_"


class AuthError(ValueError):
    """A user command that cannot be done as asked (bad name, short password, unknown user)."""


def hash_password(password: str, *, salt: bytes | None = None, params: tuple[int, int, int] = _SCRYPT) -> str:
    salt = salt or secrets.token_bytes(16)
    n, r, p = params
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token id, full token)."""
    tid = secrets.token_hex(4)
    return tid, f"{TOKEN_PREFIX}{tid}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class User:
    name: str
    epoch: int


class UserStore:
    """The users file. Every call re-reads it when it changed on disk, so ``sipscope users add`` takes
    effect on a running app without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, Any]] | None = None

    # -- file
    def _read(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {"version": 1, "users": {}}
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
            raise AuthError(f"{self.path} is not a sipscope users file")
        self._cache = (mtime, data)
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cache = None

    # -- commands
    def names(self) -> list[str]:
        return sorted(self._read()["users"])

    def add(self, name: str, password: str, *, replace: bool = False) -> None:
        if not NAME_RE.match(name or ""):
            raise AuthError(f"user name {name!r}: letters, digits and . _ @ - only (at most 64, first a letter or digit)")
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"password too short (at least {MIN_PASSWORD} characters)")
        with self._lock:
            data = json.loads(json.dumps(self._read()))
            old = data["users"].get(name)
            if old and not replace:
                raise AuthError(f"user {name!r} exists (use --replace to set a new password)")
            entry = old or {"created": int(time.time()), "tokens": [], "epoch": 0}
            entry["password"] = hash_password(password)
            entry["epoch"] = int(entry.get("epoch", 0)) + (1 if old else 0)  # a new password ends old sessions
            data["users"][name] = entry
            self._write(data)

    def remove(self, name: str) -> None:
        with self._lock:
            data = json.loads(json.dumps(self._read()))
            if data["users"].pop(name, None) is None:
                raise AuthError(f"no user {name!r}")
            self._write(data)

    def add_token(self, name: str, label: str = "") -> str:
        with self._lock:
            data = json.loads(json.dumps(self._read()))
            entry = data["users"].get(name)
            if entry is None:
                raise AuthError(f"no user {name!r} (create it first with `sipscope users add {name}`)")
            tid, token = new_token()
            entry.setdefault("tokens", []).append(
                {"id": tid, "sha256": token_hash(token), "created": int(time.time()), "label": label[:100]})
            self._write(data)
        return token

    # -- checks
    def check_password(self, name: str, password: str) -> User | None:
        entry = self._read()["users"].get(name)
        if entry is None:
            verify_password(password, hash_password("timing", params=_SCRYPT))  # same cost for unknown users
            return None
        return User(name, int(entry.get("epoch", 0))) if verify_password(password, entry["password"]) else None

    def check_token(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        want = token_hash(token)
        for name, entry in self._read()["users"].items():
            for t in entry.get("tokens", []):
                if hmac.compare_digest(t.get("sha256", ""), want):
                    return User(name, int(entry.get("epoch", 0)))
        return None

    def current(self, name: str, epoch: int) -> User | None:
        entry = self._read()["users"].get(name)
        if entry is None or int(entry.get("epoch", 0)) != epoch:
            return None
        return User(name, epoch)


def secret_key(web: WebSettings) -> str:
    """The session signing key: the configured one, else the kept one, else a new one kept for next time."""
    if web.secret_key is not None and web.secret_key.get_secret_value():
        return web.secret_key.get_secret_value()
    path = Path(web.secret_file)
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


class Sessions:
    """Signed, timestamped session cookies."""

    def __init__(self, key: str, max_age_s: float, secure: bool) -> None:
        self._ser = URLSafeTimedSerializer(key, salt="sipscope-session")
        self.max_age_s = int(max_age_s)
        self.secure = secure

    def dump(self, user: User) -> str:
        return self._ser.dumps({"u": user.name, "e": user.epoch})

    def load(self, cookie: str | None) -> tuple[str, int] | None:
        if not cookie:
            return None
        try:
            data = self._ser.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("e"), int):
            return None
        return data["u"], data["e"]

    def cookie_args(self) -> dict[str, Any]:
        return {"key": COOKIE, "max_age": self.max_age_s, "httponly": True, "samesite": "lax",
                "secure": self.secure, "path": "/"}


class Throttle:
    """Failed logins per (client, user): after ``limit`` failures in ``window_s`` further tries are refused
    until the window passes (slows password guessing; the scrypt cost slows it further)."""

    def __init__(self, limit: int = 10, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._fails: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str, name: str, now: float | None = None) -> bool:
        now = now or time.monotonic()
        with self._lock:
            fails = [t for t in self._fails.get((client, name), []) if now - t < self.window_s]
            self._fails[(client, name)] = fails
            return len(fails) >= self.limit

    def failed(self, client: str, name: str, now: float | None = None) -> None:
        with self._lock:
            if len(self._fails) > 10_000:
                self._fails.clear()
            self._fails.setdefault((client, name), []).append(now or time.monotonic())

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            self._fails.pop((client, name), None)


def safe_next(target: str | None) -> str:
    """Where to go after the login: a local path only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/trace"
    if any(c in target for c in "\r\n") or target.startswith("/login"):
        return "/trace"
    return target
