"""The app through FastAPI's TestClient against the real Elasticsearch (module's own index prefix).

Data: real captures retimed to end now, correlated by the streams code and indexed by the indexer's
document code (``conftest.indexed``). Covers login and tokens, every page and API route refusing
anonymous requests, trace by every number form, paging and its cap, the call with its legs, exports,
alerts, KPIs, and bad input / Elasticsearch down answered with a message.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient
from webhelpers import B2BUA, PASSWORD, PROXY, SIPCLI, free_port

from indexers.web.app import create_app
from indexers.web.auth import UserStore

pytestmark = pytest.mark.stack

LEG_A, LEG_B = "1-600760@38.242.140.216", "0ab3de64-a953-123e-4f86-00505658449a"


# ---------------------------------------------------------------------------------------------- access

def _flat(routes) -> list:
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)  # an included router
        out += _flat(inner.routes) if inner is not None else [r]
    return out


def _routes(app) -> list[str]:
    out = []
    for r in _flat(app.routes):
        path = getattr(r, "path", "")
        if path.startswith(("/static", "/login", "/logout", "/favicon")) or not path:
            continue
        out.append(path.replace("{call_id:path}", "some-call@host"))
    return out


def test_every_page_and_api_route_refuses_anonymous_requests(anonymous, app):
    routes = _routes(app)
    assert {"/", "/trace", "/calls/some-call@host", "/alerts", "/kpis", "/api/trace", "/api/calls/some-call@host",
            "/api/calls/some-call@host/pcap", "/api/calls/some-call@host/text", "/api/alerts", "/api/kpis",
            "/openapi.json"} <= set(routes)
    for path in routes:
        r = anonymous.get(path, params={"number": "201"}, follow_redirects=False)
        if path.startswith("/api") or path == "/openapi.json":
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer" and "201" not in r.text
        else:
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next=")
    assert anonymous.get("/api/trace?number=201", headers={"Authorization": "Bearer ssk_x_forged"}).status_code == 401
    anonymous.cookies.set("sipscope_session", "eyJ1IjoiYWxpY2UiLCJlIjowfQ.forged.sig")
    assert anonymous.get("/trace", follow_redirects=False).status_code == 303
    assert anonymous.get("/docs").status_code == 404 and anonymous.get("/redoc").status_code == 404  # no CDN UI


def test_login_sets_a_safe_cookie_and_wrong_passwords_are_throttled(app, indexed):
    c = TestClient(app)
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "next": "/alerts"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie and "Path=/" in cookie
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "next": "https://evil.example/"},
               follow_redirects=False)
    assert r.headers["location"] == "/trace"
    for _ in range(10):
        r = c.post("/login", data={"username": "mallory", "password": "guess"})
        assert r.status_code == 401 and "Wrong user name or password" in r.text
    r = c.post("/login", data={"username": "mallory", "password": "guess"})
    assert r.status_code == 429 and "Too many failed logins" in r.text
    c.post("/logout")
    assert c.get("/trace", follow_redirects=False).status_code == 303


def test_cookie_is_secure_when_configured(indexed, tmp_path):
    settings = indexed.settings.model_copy(deep=True)
    settings.web.cookie_secure = True
    r = TestClient(create_app(settings)).post("/login", data={"username": "alice", "password": PASSWORD},
                                              follow_redirects=False)
    assert "Secure" in r.headers["set-cookie"]


def test_api_token_of_a_user_opens_the_api_and_the_schema(anonymous, indexed):
    token = UserStore(indexed.settings.web.users_file).add_token("alice", "test")
    auth = {"Authorization": f"Bearer {token}"}
    r = anonymous.get("/api/trace", params={"number": "201", "last": "1h"}, headers=auth)
    assert r.status_code == 200 and r.json()["calls"] == indexed.call_ids(PROXY)
    schema = anonymous.get("/openapi.json", headers=auth).json()
    assert {"/api/trace", "/api/calls/{call_id}", "/api/calls/{call_id}/pcap", "/api/calls/{call_id}/text",
            "/api/alerts", "/api/kpis"} <= set(schema["paths"])
    assert {p["name"] for p in schema["paths"]["/api/trace"]["get"]["parameters"]} >= {"number", "last", "start", "end",
                                                                                     "registrations", "after", "size"}
    assert anonymous.get("/trace", headers=auth, follow_redirects=False).status_code == 303  # pages need a login


def test_security_headers(client):
    r = client.get("/trace")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


# ---------------------------------------------------------------------------------------------- trace

@pytest.mark.parametrize("number,calls", [
    ("201", {"proxy"}), ("101", {"proxy"}),
    ("+351913417084", {LEG_A, LEG_B}), ("0913417084", {LEG_A, LEG_B}), ("417084", {LEG_A, LEG_B}),
    ("sip:+351913417084@sbc.example", {LEG_A, LEG_B}),
])
def test_trace_finds_the_calls_by_every_form_of_the_number(client, indexed, number, calls):
    calls = {indexed.call_ids(PROXY)[0] if c == "proxy" else c for c in calls}
    r = client.get("/api/trace", params={"number": number, "last": "30m"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["calls"]) == calls
    sent = [m for name in (PROXY, B2BUA) for m in indexed.messages[name] if m.call_id in calls]
    assert body["total"] == len(sent) == len(body["messages"])
    ts = [m["ts"] for m in body["messages"]]
    assert ts == sorted(ts, reverse=True)  # newest first
    assert "raw" not in body["messages"][0]


def test_trace_page_lists_messages_with_the_columns_of_the_issue(client, indexed):
    r = client.get("/trace", params={"number": "201", "last": "30m"})
    assert r.status_code == 200
    for col in ("Date (UTC)", "Method", "From", "To", "Agent", "Source IP"):
        assert f"<th>{col}</th>" in r.text
    assert r.text.count('class="row"') == 11 and "GW/v.6.20A.027.012" in r.text


def test_registrations_only_when_asked(client):
    assert client.get("/api/trace", params={"number": "1111", "last": "30m"}).json()["total"] == 0
    body = client.get("/api/trace", params={"number": "1111", "last": "30m", "registrations": "true"}).json()
    assert body["total"] == 9 and {m["cseq_method"] for m in body["messages"]} == {"REGISTER"}
    page = client.get("/trace", params={"number": "1111", "last": "30m", "registrations": "true"})
    assert page.text.count('class="row"') == 9 and 'id="registrations" checked' in page.text


def test_paging_walks_every_message_once_and_stops_at_the_cap(client, indexed):
    seen, after = [], None
    while True:
        body = client.get("/api/trace", params={"number": "417084", "last": "30m", "size": 4, **({"after": after} if after else {})}).json()
        seen += [m["id"] for m in body["messages"]]
        after = body["next"]
        if not after:
            break
    assert len(seen) == len(set(seen)) == 13
    settings = indexed.settings.model_copy(deep=True)
    settings.web.page_size, settings.web.max_results = 4, 8
    capped = TestClient(create_app(settings))
    capped.post("/login", data={"username": "alice", "password": PASSWORD})
    first = capped.get("/trace", params={"number": "417084", "last": "30m"})
    assert first.text.count('class="row"') == 4 and 'id="next"' in first.text
    nxt = first.text.split('id="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = capped.get(nxt)
    assert second.text.count('class="row"') == 4 and 'id="next"' not in second.text
    assert "Only the newest 8 messages can be paged through" in second.text


@pytest.mark.parametrize("params,status,message", [
    ({"number": "*3417084"}, 400, "wildcards are not supported"),
    ({"number": "12\x0034"}, 400, "control characters"),
    ({"number": "1" * 70}, 400, "number too long"),
    ({"number": "201", "last": "custom", "start": "2026-01-01T00:00", "end": "2026-01-09T00:00"}, 400, "at most 5 days"),
    ({"number": "201", "last": "custom", "start": "tomorrow"}, 400, "is not a date"),
    ({"number": "201", "after": "bm90IGEgY3Vyc29y"}, 400, "paging cursor is not valid"),
    ({"number": "1" * 300}, 400, "invalid input"),
])
def test_bad_input_is_a_message_on_the_page_never_a_trace(client, params, status, message):
    r = client.get("/trace", params=params)
    assert r.status_code == status and message in r.text
    assert 'id="error"' in r.text or "class=\"error\"" in r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize("params,message", [
    ({"number": "*3417084"}, "wildcards"), ({"number": "201", "last": "9d"}, "unknown range"),
    ({"number": "  "}, "empty number"),
    ({"number": "201", "start": "2026-01-01T00:00", "end": "2026-01-20T00:00"}, "at most 5 days"),
    ({"number": "201", "last": "1h", "start": "2026-01-01T00:00"}, "either last or start/end"),
])
def test_bad_input_on_the_api_is_400_with_a_reason(client, params, message):
    r = client.get("/api/trace", params=params)
    assert r.status_code == 400 and message in r.json()["detail"]


def test_elasticsearch_down_is_a_clear_message(indexed):
    settings = indexed.settings.model_copy(deep=True)
    settings.elasticsearch.url = f"http://127.0.0.1:{free_port()}"
    settings.web.es_timeout_s = 2
    c = TestClient(create_app(settings))
    c.post("/login", data={"username": "alice", "password": PASSWORD})
    for path in ("/trace?number=201", "/calls/x@y", "/alerts", "/kpis"):
        r = c.get(path)
        assert r.status_code == 503 and "Elasticsearch is not answering" in r.text and "Traceback" not in r.text, path
    r = c.get("/api/trace", params={"number": "201"})
    assert r.status_code == 503 and r.json() == {"detail": "Elasticsearch is not answering"}


def test_an_unexpected_error_is_one_line_not_a_stack_trace(client, monkeypatch):
    from indexers.web import service

    def broken(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "trace", broken)
    for path in ("/trace?number=201", "/api/trace?number=201"):
        r = client.get(path)
        assert r.status_code == 500 and "internal error" in r.text
        assert "secret internals" not in r.text and "Traceback" not in r.text


# ---------------------------------------------------------------------------------------------- a call

def test_call_brings_its_correlated_legs_and_every_message(client, indexed):
    sent = indexed.messages[B2BUA]
    for asked in (LEG_A, LEG_B):
        body = client.get(f"/api/calls/{asked}").json()
        assert body["legs"][0] == asked and set(body["legs"]) == {LEG_A, LEG_B}
        assert [m["id"] for m in body["messages"]] == [m.id for m in sent]
        assert {s["call_id"] for s in body["summaries"]} == {LEG_A, LEG_B}
        assert not body["truncated"] and {m["kind"] for m in body["messages"]} == {"new"}
    page = client.get(f"/calls/{LEG_B}")
    assert page.text.count('class="arrow ') == len(sent) == 13
    assert page.text.count('<article class="msg"') == 13


def test_call_page_shows_the_summary_fields_and_explanations(client, indexed):
    r = client.get(f"/calls/{indexed.call_ids(PROXY)[0]}")
    text = r.text
    for label in ("Outcome", "Final status", "Post-dial delay", "Ring time", "Duration", "Hung up by", "Q.850 cause", "Codecs"):
        assert f"<dt>{label}</dt>" in text
    assert "122 ms" in text and "Normal call clearing" in text and "PCMA/8000" in text and "callee" in text
    assert "The called phone is ringing." in text and "The unique id of this call" in text


def test_unknown_call_is_404(client):
    assert client.get("/api/calls/no-such-call@nowhere").status_code == 404
    r = client.get("/calls/no-such-call@nowhere")
    assert r.status_code == 404 and "No message of this call is kept" in r.text


def test_call_exports_as_text_and_as_a_pcap_tshark_reads(client, indexed, tmp_path):
    sent = indexed.messages[B2BUA]
    r = client.get(f"/api/calls/{LEG_A}/text")
    assert r.headers["content-type"].startswith("text/plain") and "attachment" in r.headers["content-disposition"]
    assert r.text.count("\n---- #") == 13 and all(m.raw.split("\r\n", 1)[0] in r.text for m in sent)
    r = client.get(f"/api/calls/{LEG_A}/pcap")
    assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert r.headers["content-disposition"] == 'attachment; filename="call-1-600760_38.242.140.216.pcap"'
    tshark = shutil.which("tshark") or pytest.skip("tshark is not installed")
    path = tmp_path / "call.pcap"
    path.write_bytes(r.content)
    out = subprocess.run([tshark, "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
                          "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (m.src_ip, m.method or "", str(m.status_code or ""), m.call_id) for m in sent]
    assert [round(float(r[0]), 6) for r in rows] == [round(m.ts, 6) for m in sent]


# ---------------------------------------------------------------------------------------------- alerts, KPIs

def test_alerts_list_open_alerts_with_evidence_calls_that_open(client, indexed):
    body = client.get("/api/alerts", params={"last": "1h"}).json()
    names = {a["name"] for a in body["open"]}
    assert "scanner_user_agent" in names
    scanner = next(a for a in body["open"] if a["name"] == "scanner_user_agent")
    assert scanner["subject"] == "40.129.198.250" and scanner["evidence"]
    assert client.get(f"/api/calls/{scanner['evidence'][0]}").status_code == 200
    page = client.get("/alerts", params={"last": "1h"})
    assert "scanner_user_agent" in page.text and f'/calls/{scanner["evidence"][0]}' in page.text
    assert client.get("/api/alerts", params={"last": "5d"}).json()["resolved"]  # the capture's first alert resolved


def test_kpis_per_trunk_and_for_the_whole_network(client, indexed):
    trunk = client.get("/api/kpis", params={"last": "1h", "scope": "trunk"}).json()
    assert trunk["keys"] == ["lab-a"] and trunk["interval_s"] == 60
    (series,) = trunk["series"]
    assert series["key"] == "lab-a" and series["attempts"] == 1
    asr = [v for _, v in series["asr"] if v is not None]
    assert asr == [100.0]
    network = client.get("/api/kpis", params={"last": "6h", "scope": "all"}).json()  # the sipcli capture lasts 3h20
    calls = len({m.call_id for name in (PROXY, B2BUA, SIPCLI) for m in indexed.messages[name] if m.method == "INVITE"})
    assert network["series"][0]["attempts"] == calls
    assert max(v for _, v in network["series"][0]["cps"] if v is not None) > 0
    r = client.get("/kpis", params={"last": "1h", "scope": "all"})
    assert r.text.count('<figure class="chart">') == 5
    assert client.get("/api/kpis", params={"scope": "nope"}).status_code == 400


def test_ranges_of_alerts_and_kpis_are_checked(client):
    r = client.get("/alerts", params={"last": "custom", "start": "2026-01-01T00:00", "end": "2026-02-01T00:00"})
    assert r.status_code == 400 and "at most 5 days" in r.text


def test_typed_text_is_escaped_back_into_the_page(client):
    r = client.get("/trace", params={"number": '"><script>x()</script>', "last": "30m"})
    assert r.status_code == 200 and "<script>x()" not in r.text
    assert 'value="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in r.text
