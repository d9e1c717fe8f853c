"""Users file, password and token hashing, session cookies, login throttling, the redirect target."""

from __future__ import annotations

import json
import os
import stat

import pytest
from pydantic import SecretStr

from indexers.web import auth
from indexers.web.auth import AuthError, Sessions, Throttle, User, UserStore, safe_next
from sipscope.settings import WebSettings

FAST = (2**4, 1, 1)  # tiny scrypt cost for the hash-format tests


def test_password_hash_is_salted_scrypt_and_verifies():
    h1, h2 = auth.hash_password("s3cret-pass", params=FAST), auth.hash_password("s3cret-pass", params=FAST)
    assert h1.startswith("scrypt$16$1$1$") and h1 != h2  # a salt of its own each time
    assert "s3cret" not in h1
    assert auth.verify_password("s3cret-pass", h1)
    assert not auth.verify_password("s3cret-pasS", h1)
    assert not auth.verify_password("x", "garbage") and not auth.verify_password("x", "md5$1$2$3$4$5")


def test_users_file_keeps_no_password_or_token_and_is_private(tmp_path):
    store = UserStore(tmp_path / "state" / "users.json")
    store.add("alice", "long enough pw")
    token = store.add_token("alice", "nightly-script")
    text = store.path.read_text()
    assert "long enough pw" not in text and token not in text and token.split("_", 2)[2] not in text
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    data = json.loads(text)["users"]["alice"]
    assert data["password"].startswith("scrypt$") and data["tokens"][0]["label"] == "nightly-script"
    assert store.check_password("alice", "long enough pw") == User("alice", 0)
    assert store.check_password("alice", "wrong password") is None
    assert store.check_password("bob", "long enough pw") is None
    assert store.check_token(token) == User("alice", 0)
    assert store.check_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.check_token("Bearer nonsense") is None


@pytest.mark.parametrize("name,password,why", [
    ("", "long enough pw", "user name"), ("a b", "long enough pw", "user name"), ("<x>", "long enough pw", "user name"),
    ("alice", "short", "too short"),
])
def test_bad_user_input_is_refused(tmp_path, name, password, why):
    with pytest.raises(AuthError, match=why):
        UserStore(tmp_path / "u.json").add(name, password)


def test_existing_user_needs_replace_and_a_new_password_ends_old_sessions(tmp_path):
    store = UserStore(tmp_path / "u.json")
    store.add("alice", "first password")
    with pytest.raises(AuthError, match="exists"):
        store.add("alice", "second password")
    assert store.current("alice", 0) == User("alice", 0)
    store.add("alice", "second password", replace=True)
    assert store.current("alice", 0) is None  # the old cookie's epoch no longer matches
    assert store.check_password("alice", "second password") == User("alice", 1)
    store.remove("alice")
    assert store.current("alice", 1) is None and store.names() == []
    with pytest.raises(AuthError, match="no user"):
        store.add_token("alice")


def test_a_running_app_sees_users_added_by_the_command(tmp_path):
    app_view, command_view = UserStore(tmp_path / "u.json"), UserStore(tmp_path / "u.json")
    assert app_view.names() == []
    command_view.add("carol", "long enough pw")
    assert app_view.names() == ["carol"]


def test_session_cookie_is_signed_expires_and_has_safe_attributes():
    s = Sessions("k" * 40, max_age_s=3600, secure=True)
    cookie = s.dump(User("alice", 3))
    assert s.load(cookie) == ("alice", 3)
    assert s.load(cookie[:-2] + "xx") is None
    assert Sessions("other-key" * 5, 3600, True).load(cookie) is None
    assert Sessions("k" * 40, max_age_s=-1, secure=True).load(cookie) is None  # expired
    assert s.load(None) is None and s.load("") is None
    assert s.cookie_args() == {"key": auth.COOKIE, "max_age": 3600, "httponly": True, "samesite": "lax",
                               "secure": True, "path": "/"}


def test_secret_key_from_settings_or_generated_once_and_kept_private(tmp_path):
    web = WebSettings(secret_file=tmp_path / "secret", users_file=tmp_path / "u.json")
    first = auth.secret_key(web)
    assert len(first) >= 32 and auth.secret_key(web) == first
    assert stat.S_IMODE(os.stat(tmp_path / "secret").st_mode) == 0o600
    configured = WebSettings(secret_key=SecretStr("configured-key-" * 3), secret_file=tmp_path / "other")
    assert auth.secret_key(configured) == "configured-key-" * 3 and not (tmp_path / "other").exists()


def test_throttle_blocks_after_repeated_failures_then_forgets():
    t = Throttle(limit=3, window_s=60)
    for i in range(3):
        assert not t.blocked("1.2.3.4", "alice", now=100 + i)
        t.failed("1.2.3.4", "alice", now=100 + i)
    assert t.blocked("1.2.3.4", "alice", now=105)
    assert not t.blocked("1.2.3.5", "alice", now=105)
    assert not t.blocked("1.2.3.4", "alice", now=200)


@pytest.mark.parametrize("target,expected", [
    ("/calls/abc@host", "/calls/abc@host"), ("/trace?number=201&last=1h", "/trace?number=201&last=1h"),
    ("https://evil.example/", "/trace"), ("//evil.example/x", "/trace"), ("/\\evil", "/trace"),
    ("", "/trace"), (None, "/trace"), ("/login?next=/x", "/trace"), ("/a\r\nSet-Cookie: x", "/trace"),
])
def test_after_login_only_local_paths(target, expected):
    assert safe_next(target) == expected
