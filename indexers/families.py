"""The five index families: which topic feeds each, its record type, its event time and its number fields.

Everything else in ``indexers/`` (documents, templates, retention, search, Kibana checks) reads this table,
so a family is described once.

==================  =====================  =================  ===========  =====================================
family              topic                  record             event time   daily index
==================  =====================  =================  ===========  =====================================
``messages``        ``sip.messages``       SipMessage         ``ts``       ``<prefix>sip-messages-YYYY.MM.DD``
``calls``           ``sip.calls``          CallSummary        ``start_ts`` ``<prefix>sip-calls-YYYY.MM.DD``
``registrations``   ``sip.registrations``  Registration       ``start_ts`` ``<prefix>sip-registrations-...``
``stats``           ``sip.stats``          StatsRow           ``ts``       ``<prefix>sip-stats-YYYY.MM.DD``
``alerts``          ``sip.alerts``         Alert              ``ts``       ``<prefix>sip-alerts-YYYY.MM.DD``
==================  =====================  =================  ===========  =====================================

The day of an index is the UTC day of the record's event time (never the wall clock), so late or
replayed data lands in its own day and expires with it. A call summary's interim and final versions
share ``start_ts`` and so the same index: the final one overwrites the interim one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipscope import records, topics

INFRA_TEMPLATE_DIR = "templates"


@dataclass(frozen=True)
class Family:
    name: str
    """Short name used on the command line and in settings (``messages``)."""
    topic: str
    """Kafka topic, without the prefix."""
    record: type
    """The ``msgspec.Struct`` of the topic (:mod:`sipscope.records`)."""
    base: str
    """Index base name: templates match ``<prefix><base>-*``; daily indices are ``<prefix><base>-YYYY.MM.DD``."""
    time_field: str
    """Record field whose time names the daily index and orders search results."""
    time_fields: tuple[str, ...]
    """Every field holding epoch seconds; turned into ISO-8601 dates in the document."""
    numbers: tuple[tuple[str, str], ...] = ()
    """(raw field, E.164 field) pairs; the document adds ``<E.164 field>_rev`` (reversed digits)."""

    def index(self, prefix: str, day: str) -> str:
        """Daily index name, ``day`` as ``YYYY.MM.DD``."""
        return f"{prefix}{self.base}-{day}"

    def pattern(self, prefix: str) -> str:
        return f"{prefix}{self.base}-*"

    @property
    def rev_fields(self) -> tuple[str, ...]:
        return tuple(f"{e164}_rev" for _, e164 in self.numbers)


_MSG_NUMBERS = (
    ("from_user", "from_user_e164"),
    ("to_user", "to_user_e164"),
    ("ruri_user", "ruri_user_e164"),
    ("pai_user", "pai_user_e164"),
    ("diversion_user", "diversion_user_e164"),
)

MESSAGES = Family("messages", topics.MESSAGES, records.SipMessage, "sip-messages", "ts", ("ts",), _MSG_NUMBERS)
CALLS = Family(
    "calls", topics.CALLS, records.CallSummary, "sip-calls", "start_ts",
    ("start_ts", "end_ts", "invite_ts", "first_provisional_ts", "ringing_ts", "answer_ts", "ack_ts", "bye_ts",
     "bye_ok_ts", "final_ts"),
    (("caller", "caller_e164"), ("callee", "callee_e164"), ("ruri_user", "ruri_user_e164"),
     ("pai_user", "pai_user_e164"), ("diversion_user", "diversion_user_e164")),
)
REGISTRATIONS = Family(
    "registrations", topics.REGISTRATIONS, records.Registration, "sip-registrations", "start_ts",
    ("start_ts", "end_ts"), (("user", "user_e164"),),
)
STATS = Family("stats", topics.STATS, records.StatsRow, "sip-stats", "ts", ("ts",))
ALERTS = Family("alerts", topics.ALERTS, records.Alert, "sip-alerts", "ts", ("ts", "window_start", "window_end"))

FAMILIES: dict[str, Family] = {f.name: f for f in (MESSAGES, CALLS, REGISTRATIONS, STATS, ALERTS)}


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown index family {name!r} (one of {', '.join(FAMILIES)})") from None


def by_topic(prefix: str, names: list[str] | tuple[str, ...]) -> dict[str, Family]:
    """Prefixed topic name -> family, for the families in ``names``."""
    return {f"{prefix}{get(n).topic}": get(n) for n in names}
