"""Phone-number normalisation: the user part of a SIP/tel URI -> E.164 digits (no ``+``).

Pure functions of their arguments: the numbering plan is passed in (build it once with
:meth:`NumberPlan.from_settings`), nothing is read from settings or globals at call time.

Rules of :func:`normalise`, in order:

1. ``None``/empty -> ``None``. ``%XX`` escapes are decoded (``%2B61...`` is ``+61...``).
2. ``;params`` are dropped (tel-URI style ``;phone-context=...``, ``;npdi``, ``;isub=...``).
3. Visual separators (space ``-`` ``.`` ``(`` ``)`` ``/``) are dropped.
4. ``+`` followed by ASCII digits -> the digits as they are.
5. International prefix (``00``) followed by a digit 1-9 -> the prefix is stripped.
6. National trunk prefix (``0``) followed by a digit 1-9 -> replaced by the country code
   (``0289707501`` -> ``61289707501``).
7. Other ASCII digits are kept as they are (extensions ``1001``, short codes ``000``).
8. Anything else (``alice``, ``anonymous``, ``*98``, ``+``) -> ``None``: not a phone number.

Rules 5 and 6 need a non-zero digit after the prefix because neither a country code nor a national
significant number starts with 0; so ``000`` (an emergency short code) stays ``000``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

_SEPARATORS = str.maketrans("", "", " -.()/\t")


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How national and international dialled forms map to E.164."""

    country_code: str = "61"
    trunk_prefix: str = "0"
    international_prefix: str = "00"

    @classmethod
    def from_settings(cls, numbering: Any) -> NumberPlan:
        """Build from :class:`sipscope.settings.NumberingSettings` (or anything with the same attributes)."""
        return cls(
            country_code=numbering.country_code,
            trunk_prefix=numbering.trunk_prefix,
            international_prefix=numbering.international_prefix,
        )


def _compact(user: str) -> str:
    """Decode escapes, drop ``;params`` and visual separators."""
    if "%" in user:
        user = unquote(user)
    if ";" in user:
        user = user.partition(";")[0]
    return user.translate(_SEPARATORS)


def _e164(s: str, plan: NumberPlan) -> str | None:
    """E.164 digits of an already compacted string, or None."""
    if s[:1] == "+":
        s = s[1:]
        return s if s.isdigit() and s.isascii() else None
    if not (s.isdigit() and s.isascii()):
        return None
    intl, trunk = plan.international_prefix, plan.trunk_prefix
    if intl and s.startswith(intl) and s[len(intl) : len(intl) + 1] in _NONZERO:
        return s[len(intl) :]
    if trunk and s.startswith(trunk) and s[len(trunk) : len(trunk) + 1] in _NONZERO:
        return plan.country_code + s[len(trunk) :]
    return s


_NONZERO = frozenset("123456789")


def normalise(user: str | None, plan: NumberPlan) -> str | None:
    """E.164 digits (no ``+``) of a URI user part, or None when it is not a phone number.

    Never raises for any ``str`` (or ``None``).
    """
    if not user or user.isalpha():
        return None
    if user.isdigit() or (user[0] == "+" and user[1:].isdigit()):
        return _e164(user, plan)  # already compact: the usual case, no copies
    return _e164(_compact(user), plan)


def search_forms(query: str, plan: NumberPlan) -> list[str]:
    """The forms under which a typed number may be stored, most useful first, without duplicates.

    * the E.164 digits (matches the ``*_e164`` fields);
    * the typed number without separators, ``+`` kept (matches the raw ``*_user`` fields as dialled);
    * the bare digits of it, when the number was typed with ``+``;
    * the national form (trunk prefix + national number) when the number is in the plan's country,
      since raw user parts are often national.

    A query that is not a phone number (``alice``) returns ``[query.strip()]``; an empty one ``[]``.
    """
    q = query.strip()
    if not q:
        return []
    typed = _compact(q)
    e164 = _e164(typed, plan)
    if e164 is None:
        return [q]
    forms = [e164, typed, typed.lstrip("+")]
    if plan.trunk_prefix and e164.startswith(plan.country_code) and len(e164) > len(plan.country_code):
        forms.append(plan.trunk_prefix + e164[len(plan.country_code) :])
    return list(dict.fromkeys(f for f in forms if f))


def reverse_digits(s: str | None) -> str | None:
    """``s`` reversed (for suffix search on a reverse-indexed field: ``...7501`` -> prefix ``1057...``)."""
    return None if s is None else s[::-1]
