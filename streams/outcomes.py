"""Call and registration outcomes: the one place that maps what was seen on the wire to an outcome.

Call outcome of one leg (first matching row wins). "Final" is the final response to the *initial* INVITE
transaction (the latest one when a 401/407 or 3xx was followed by a new INVITE with the same Call-ID and a
higher CSeq: that is the same call continuing, not a new one). "Ringing" means a 180 or 183 was seen.

=====  ====================================================================  ================
row    what was seen                                                         outcome
=====  ====================================================================  ================
1      a 2xx to the initial INVITE (even if a CANCEL or failure crossed it)  ``answered``
2      final 3xx                                                             ``redirected``
3      final 401 / 407, never retried                                        ``unauthorized``
4      final 486 Busy Here / 600 Busy Everywhere                             ``busy``
5      final 408 Request Timeout / 480 Temporarily Unavailable               ``no_answer``
6      final 487 Request Terminated, after ringing                           ``no_answer``
7      final 487 Request Terminated, before ringing                          ``cancelled``
8      final 403/404/603/604/606/607 and every other 4xx / 6xx               ``rejected``
9      final 5xx                                                             ``failed``
10     no final; CANCEL (or a BYE ending an early dialog) after ringing      ``no_answer``
11     no final; CANCEL (or a BYE ending an early dialog) before ringing     ``cancelled``
12     no final; no response at all within Timer B (``no_final_timeout_s``)  ``failed``
13     no final; the capture ended, or only provisionals then silence for    ``incomplete``
       ``proceeding_timeout_s`` (we lost sight of the call)
=====  ====================================================================  ================

Notes: a final response decides before a CANCEL does (a CANCEL answered by 408 is ``no_answer``); row 1
wins over everything because a 2xx creates the dialog whatever else crossed it on the wire.

``end_reason`` (why the summary was closed, first match): ``bye`` (a BYE ended the call: after the answer,
or an early-dialog BYE, rows 10/11), ``cancel`` (a CANCEL was seen and the final was 487 or none),
``final_response`` (any other final), ``timeout_no_bye`` (answered, then silence for
``answered_timeout_s``), ``timeout_no_final`` (rows 12 and 13 by timer), ``capture_end`` (offline analysis
ended while the call was still open and its end unknown; answered calls keep ``answered``).

Timings (RFC 6076, t1 = first INVITE, challenge round included like RRD):
``srd_success_ms`` (answered calls: to the first non-100 provisional, else the 2xx), ``srd_failure_ms``
(final failure response, see :func:`is_failure_response`), ``pdd_ms`` (to the first 18x, else the final),
``ring_time_s`` (first 18x to the answer / CANCEL / early BYE / final), ``duration_s`` (answered: 2xx to
BYE; to the last message when expired; to the end of the capture at ``capture_end``), ``sdd_ms``
(answered: BYE to its 2xx).

Registration outcome of one REGISTER chain (the 401/407 challenge and its retry joined):

=====================================================================  ================
what was seen                                                          outcome
=====================================================================  ================
final 2xx, granted expiry > 0                                          ``ok``
final 2xx, granted expiry 0 (de-registration)                          ``unregistered``
final >= 300 other than 401/407                                        ``failed``
401/407 not followed by a retry within ``auth_retry_wait_s``           ``challenged``
no final response within Timer F (``register_timeout_s``) or before    ``timeout``
the capture ended
=====================================================================  ================
"""

from __future__ import annotations

ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no_answer"
CANCELLED = "cancelled"
REJECTED = "rejected"
FAILED = "failed"
REDIRECTED = "redirected"
UNAUTHORIZED = "unauthorized"
INCOMPLETE = "incomplete"

CALL_OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, CANCELLED, REJECTED, FAILED, REDIRECTED, UNAUTHORIZED, INCOMPLETE)

BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({408, 480})
CHALLENGE_CODES = frozenset({401, 407})
NON_FAILURE_4XX = frozenset({401, 402, 407})
"""RFC 6076 4.3.2: 4xx that are challenges, not failures (excluded from failed-setup SRD)."""

REG_OK = "ok"
REG_UNREGISTERED = "unregistered"
REG_FAILED = "failed"
REG_CHALLENGED = "challenged"
REG_TIMEOUT = "timeout"

REGISTRATION_OUTCOMES = (REG_OK, REG_UNREGISTERED, REG_FAILED, REG_CHALLENGED, REG_TIMEOUT)


def call_outcome(final_status: int | None, ringing: bool, abandoned: bool, got_response: bool,
                 capture_end: bool) -> str:
    """Outcome of a leg by the table above.

    ``abandoned``: a CANCEL (or a BYE before any final) was seen; ``got_response``: any response to the
    initial INVITE was seen; ``capture_end``: the leg is closed because the capture ended, not by a timer.
    """
    if final_status is not None:
        if final_status < 300:
            return ANSWERED
        if final_status < 400:
            return REDIRECTED
        if final_status in CHALLENGE_CODES:
            return UNAUTHORIZED
        if final_status in BUSY_CODES:
            return BUSY
        if final_status in NO_ANSWER_CODES:
            return NO_ANSWER
        if final_status == 487:
            return NO_ANSWER if ringing else CANCELLED
        if 500 <= final_status < 600:
            return FAILED
        return REJECTED
    if abandoned:
        return NO_ANSWER if ringing else CANCELLED
    if not got_response and not capture_end:
        return FAILED
    return INCOMPLETE


def is_failure_response(status: int | None) -> bool:
    """RFC 6076 failure response: 4xx except 401/402/407, 5xx, 6xx (the end of a failed-setup SRD)."""
    return status is not None and status >= 400 and status not in NON_FAILURE_4XX


def registration_outcome(final_status: int | None, expires: int | None, challenged_last: bool) -> str:
    """Outcome of a REGISTER chain by the table above (``challenged_last``: the last response was 401/407)."""
    if final_status is not None and 200 <= final_status < 300:
        return REG_UNREGISTERED if expires == 0 else REG_OK
    if challenged_last:
        return REG_CHALLENGED
    if final_status is not None and final_status >= 300:
        return REG_FAILED
    return REG_TIMEOUT
