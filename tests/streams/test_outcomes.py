"""The outcome table of streams/outcomes.py, row by row."""

from __future__ import annotations

import pytest

from streams.outcomes import call_outcome, is_failure_response, registration_outcome


@pytest.mark.parametrize(("final", "ringing", "abandoned", "got_response", "capture_end", "expected"), [
    (200, False, False, True, False, "answered"),
    (202, True, True, True, False, "answered"),          # row 1 wins over a crossing CANCEL
    (302, False, False, True, False, "redirected"),
    (401, False, False, True, False, "unauthorized"),
    (407, True, False, True, True, "unauthorized"),
    (486, True, False, True, False, "busy"),
    (600, False, False, True, False, "busy"),
    (408, False, True, True, False, "no_answer"),        # a final decides over a CANCEL
    (480, True, False, True, False, "no_answer"),
    (487, True, True, True, False, "no_answer"),
    (487, False, True, True, False, "cancelled"),
    (403, False, False, True, False, "rejected"),
    (404, False, False, True, False, "rejected"),
    (603, False, False, True, False, "rejected"),
    (604, False, False, True, False, "rejected"),
    (606, False, False, True, False, "rejected"),
    (607, False, False, True, False, "rejected"),
    (488, False, False, True, False, "rejected"),
    (500, False, False, True, False, "failed"),
    (503, True, False, True, False, "failed"),
    (None, True, True, True, False, "no_answer"),
    (None, False, True, False, False, "cancelled"),
    (None, False, False, False, False, "failed"),        # Timer B: no response at all
    (None, False, False, False, True, "incomplete"),     # capture ended before Timer B
    (None, True, False, True, False, "incomplete"),      # proceeding, then silence
    (None, False, False, True, True, "incomplete"),
])
def test_call_outcome_table(final, ringing, abandoned, got_response, capture_end, expected):
    assert call_outcome(final, ringing, abandoned, got_response, capture_end) == expected


def test_failure_responses_per_rfc6076():
    assert [c for c in (180, 200, 302, 400, 401, 402, 403, 407, 487, 503, 603) if is_failure_response(c)] == \
        [400, 403, 487, 503, 603]
    assert not is_failure_response(None)


@pytest.mark.parametrize(("final", "expires", "challenged", "expected"), [
    (200, 3600, False, "ok"), (200, None, False, "ok"), (200, 0, False, "unregistered"),
    (403, 3600, False, "failed"), (503, 60, False, "failed"), (401, 3600, True, "challenged"),
    (407, 3600, True, "challenged"), (None, 3600, False, "timeout"),
])
def test_registration_outcome_table(final, expires, challenged, expected):
    assert registration_outcome(final, expires, challenged) == expected
