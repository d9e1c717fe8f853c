"""Explanations: the operator-editable file, status codes, headers (compact forms too), SDP lines."""

from __future__ import annotations

import pytest

from indexers.web import explain
from sipscope.settings import WebSettings


@pytest.fixture(scope="module")
def ex():
    return explain.load(WebSettings().explanations_file)


def test_support_wording_of_this_network(ex):
    assert "wrong password on this network" in ex.response(403)["text"]
    assert ex.response(603)["title"] == "Decline" and "no credit" in ex.response(603)["text"]
    assert ex.response(486)["title"] == "Busy Here"


def test_every_common_final_code_is_explained_and_unknown_ones_fall_back_to_their_class(ex):
    for code in (100, 180, 183, 200, 302, 400, 401, 403, 404, 407, 408, 480, 481, 486, 487, 488, 500, 503, 603):
        assert ex.response(code)["text"], code
    assert ex.response(499)["title"] == "Request failure" and "499 is not in the list" in ex.response(499)["text"]
    assert ex.response(999)["title"] == "Unknown"
    assert ex.cause(16).startswith("Normal call clearing") and ex.cause(None) == "" and ex.cause(9999) == ""
    assert ex.outcome("busy") and ex.outcome("no such") == ""


def test_annotate_explains_each_line_and_expands_compact_headers(ex):
    raw = ("INVITE sip:101@10.0.0.2 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
           "f: <sip:201@10.0.0.1>;tag=1\r\nSubject: folded\r\n continued\r\nX-Unknown: 1\r\nc: application/sdp\r\n\r\n"
           "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendonly\r\n")
    lines = explain.annotate(raw, ex)
    kinds = [(ln.kind, ln.name) for ln in lines]
    assert kinds == [("start", "request"), ("header", "Via"), ("header", "From"), ("header", "Subject"),
                     ("header", "X-Unknown"), ("header", "Content-Type"), ("blank", ""), ("body", "v"), ("body", "c"),
                     ("body", "m"), ("body", "a=rtpmap"), ("body", "a=sendonly")]
    by_name = {ln.name: ln for ln in lines}
    assert by_name["Via"].explanation.startswith("The path the request took")
    assert by_name["Subject"].text == "Subject: folded\n continued"
    assert by_name["X-Unknown"].explanation == ""
    assert "IP address the media" in by_name["c"].explanation
    assert "put on hold" in by_name["a=sendonly"].explanation


def test_status_line_carries_the_code_explanation(ex):
    first = explain.annotate("SIP/2.0 603 Decline\r\nCall-ID: x\r\n\r\n", ex)[0]
    assert first.kind == "start" and "603 Decline" in first.explanation and "no credit" in first.explanation


def test_a_broken_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("responses:\n  abc: {title: x}\n")
    with pytest.raises(explain.ExplanationsError, match="wrong entry"):
        explain.load(bad)
    with pytest.raises(explain.ExplanationsError, match="cannot read"):
        explain.load(tmp_path / "missing.yaml")
    bad.write_text("- a list\n")
    with pytest.raises(explain.ExplanationsError, match="mapping"):
        explain.load(bad)
