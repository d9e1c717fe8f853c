"""Kibana saved objects: parse, references, fields (against the templates), import through a fake Kibana.

The check against the real mappings (``_field_caps`` after indexing data) is in test_indexer_stack.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from indexers import kibana
from indexers.errors import KibanaImportError


def test_objects_parse_resolve_and_use_only_mapped_fields():
    objs = kibana.check()
    types = {o["type"] for o in objs}
    assert {"index-pattern", "search", "lens", "dashboard"} <= types
    titles = {o["attributes"]["title"] for o in objs}
    assert {"Trace by number", "Carrier KPIs", "Capacity", "Alerts"} <= titles
    views = {o["attributes"]["title"]: o["attributes"]["timeFieldName"] for o in objs if o["type"] == "index-pattern"}
    assert views == {"sip-messages-*": "ts", "sip-calls-*": "start_ts", "sip-registrations-*": "start_ts",
                     "sip-stats-*": "ts", "sip-alerts-*": "ts"}
    trace = next(o for o in objs if o["attributes"]["title"] == "Trace by number")
    assert trace["attributes"]["sort"] == [["ts", "desc"]]
    assert {"method", "status_code", "from_user", "to_user", "user_agent", "src_ip", "call_id"} <= set(trace["attributes"]["columns"])


def test_every_line_of_every_file_is_one_object():
    for path in kibana.files():
        for line in path.read_text().splitlines():
            assert isinstance(json.loads(line), dict), path.name


def _mutated(fn):
    objs = kibana.load()
    fn(objs)
    return kibana.validate(objs)


def test_a_dangling_reference_is_found():
    def drop_view(objs):
        objs[:] = [o for o in objs if o["id"] != "sipscope-sip-stats"]

    problems = _mutated(drop_view)
    assert any("does not resolve" in p for p in problems)


def test_a_missing_or_mistyped_field_is_found():
    def break_field(objs):
        lens = next(o for o in objs if o["id"] == "sipscope-kpi-cps")
        lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]["columns"]["cps"]["sourceField"] = "cps_typo"
        trace = next(o for o in objs if o["id"] == "sipscope-trace-by-number")
        trace["attributes"]["sort"] = [["raw", "desc"]]  # text: not sortable

    problems = _mutated(break_field)
    assert any("cps_typo" in p for p in problems)
    assert any("'raw'" in p and "aggregatable" in p for p in problems)


def test_a_panel_without_its_reference_is_found():
    def drop_ref(objs):
        dash = next(o for o in objs if o["type"] == "dashboard")
        dash["references"] = dash["references"][1:]

    assert any("has no reference" in p for p in _mutated(drop_ref))


def test_render_prefixes_the_data_view_titles_only():
    out = [json.loads(line) for line in kibana.render(kibana.load(), "acme-").decode().splitlines()]
    assert {o["attributes"]["title"] for o in out if o["type"] == "index-pattern"} == {
        "acme-sip-messages-*", "acme-sip-calls-*", "acme-sip-registrations-*", "acme-sip-stats-*", "acme-sip-alerts-*"}
    assert "Trace by number" in {o["attributes"]["title"] for o in out}
    assert all("_where" not in o for o in out)


class _FakeKibana(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []
    answer: ClassVar[dict] = {}

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.path, self.headers, body))  # case-insensitive lookups
        out = json.dumps(type(self).answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_kibana():
    _FakeKibana.seen = []
    server = HTTPServer(("127.0.0.1", 0), _FakeKibana)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}", _FakeKibana
    server.shutdown()


def test_import_posts_multipart_ndjson_with_xsrf_header(fake_kibana):
    url, kb = fake_kibana
    objs = kibana.check()
    kb.answer = {"success": True, "successCount": len(objs), "errors": []}
    data = kibana.render(objs)
    answer = kibana.import_objects(url, data, space="noc")
    assert answer["successCount"] == len(objs)
    path, headers, body = kb.seen[0]
    assert path == "/s/noc/api/saved_objects/_import?overwrite=true"
    assert headers["kbn-xsrf"] == "true"
    boundary = headers["Content-Type"].split("boundary=")[1]
    assert headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="sipscope.ndjson"' in body
    part = body.split(b"\r\n\r\n", 1)[1].rsplit(f"\r\n--{boundary}--".encode(), 1)[0]
    assert part == data


def test_import_errors_are_reported(fake_kibana):
    url, kb = fake_kibana
    kb.answer = {"success": False, "successCount": 3,
                 "errors": [{"type": "lens", "id": "x", "error": {"type": "missing_references"}}]}
    with pytest.raises(KibanaImportError, match="missing_references"):
        kibana.import_objects(url, b"{}\n")
    with pytest.raises(KibanaImportError, match="cannot import"):
        kibana.import_objects("http://127.0.0.1:1", b"{}\n", timeout=2)


def test_cli_import_needs_url_and_checks_first(fake_kibana, capsys, monkeypatch):
    from sipscope import logs
    from sipscope.cli import main

    monkeypatch.setattr(logs, "configure_logging", lambda: None)  # keep structlog off capsys's stderr

    url, kb = fake_kibana
    kb.answer = {"success": True, "successCount": 20, "errors": []}
    assert main(["kibana", "import"]) == 2
    assert main(["kibana", "import", "--url", url]) == 0
    assert "imported 20 objects" in capsys.readouterr().out
    assert main(["kibana", "check"]) == 0
