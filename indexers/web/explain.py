"""Plain-words explanations of what a SIP message shows, for support staff.

The words are data (``infra/web/sip-explanations.yaml``, see its header), loaded once by
:func:`load`. :func:`annotate` splits a raw message into its start line, headers and body lines and pairs
each line with its explanation; it never interprets the text as markup (the templates escape it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
           "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires", "a": "Accept-Contact",
           "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info"}
"""RFC 3261 / IANA compact header forms."""


class ExplanationsError(ValueError):
    """The explanations file is missing or not in the expected shape."""


@dataclass(frozen=True)
class Line:
    kind: str
    """``start``, ``header``, ``blank``, ``body`` (SDP line) or ``text`` (other body line)."""
    text: str
    name: str = ""
    """Header name as it is known (compact forms expanded), or the SDP line type."""
    explanation: str = ""


@dataclass
class Explanations:
    responses: dict[int, dict[str, str]] = field(default_factory=dict)
    classes: dict[int, dict[str, str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case header name -> text."""
    start_line: dict[str, str] = field(default_factory=dict)
    sdp: dict[str, str] = field(default_factory=dict)
    sdp_attributes: dict[str, str] = field(default_factory=dict)
    q850: dict[int, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def response(self, code: int | None) -> dict[str, str]:
        """``{title, text}`` of a status code (its class when the code itself is not listed)."""
        if code is None:
            return {"title": "", "text": ""}
        if code in self.responses:
            return self.responses[code]
        cls = self.classes.get(code // 100)
        if cls:
            return {"title": cls.get("title", ""), "text": f"{cls.get('text', '')} (code {code} is not in the list)"}
        return {"title": "Unknown", "text": f"{code} is not a SIP status code."}

    def header(self, name: str) -> str:
        full = COMPACT.get(name.lower(), name) if len(name) == 1 else name
        return self.headers.get(full.lower(), "")

    def cause(self, q850: int | None) -> str:
        return self.q850.get(q850, "") if q850 is not None else ""

    def outcome(self, outcome: str | None) -> str:
        return self.outcomes.get(outcome or "", "")


def parse(data: dict[str, Any]) -> Explanations:
    """The YAML document -> :class:`Explanations`; raises :class:`ExplanationsError` on a wrong shape."""
    if not isinstance(data, dict):
        raise ExplanationsError("the explanations file must be a mapping")
    try:
        ex = Explanations(
            responses={int(k): {"title": str(v.get("title", "")), "text": str(v.get("text", ""))}
                       for k, v in (data.get("responses") or {}).items()},
            classes={int(k): {"title": str(v.get("title", "")), "text": str(v.get("text", ""))}
                     for k, v in (data.get("classes") or {}).items()},
            headers={str(k).lower(): str(v) for k, v in (data.get("headers") or {}).items()},
            start_line={str(k): str(v) for k, v in (data.get("start_line") or {}).items()},
            sdp={str(k): str(v) for k, v in (data.get("sdp") or {}).items()},
            sdp_attributes={str(k).lower(): str(v) for k, v in (data.get("sdp_attributes") or {}).items()},
            q850={int(k): str(v) for k, v in (data.get("q850") or {}).items()},
            outcomes={str(k): str(v) for k, v in (data.get("outcomes") or {}).items()},
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ExplanationsError(f"explanations file has a wrong entry: {exc}") from None
    return ex


def load(path: Path) -> Explanations:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExplanationsError(f"cannot read the explanations file {path}: {exc}") from None
    return parse(data)


def _start_line(line: str, ex: Explanations) -> Line:
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        r = ex.response(code)
        text = f"{code} {r['title']}: {r['text']}" if code is not None else ex.start_line.get("response", "")
        return Line("start", line, "status", text)
    return Line("start", line, "request", ex.start_line.get("request", ""))


def _sdp_line(line: str, ex: Explanations) -> Line:
    kind, _, value = line.partition("=")
    if kind == "a":
        attr = value.split(":", 1)[0].strip().lower()
        text = ex.sdp_attributes.get(attr) or ex.sdp.get("a", "")
        return Line("body", line, f"a={attr}", text)
    return Line("body", line, kind, ex.sdp.get(kind, ""))


def annotate(raw: str, ex: Explanations) -> list[Line]:
    """Every line of a raw SIP message with its explanation (headers folded over lines stay together)."""
    text = raw.replace("\r\n", "\n")
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    out = [_start_line(lines[0], ex)] if lines and lines[0] else []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and out and out[-1].kind == "header":  # folded continuation
            prev = out[-1]
            out[-1] = Line("header", prev.text + "\n" + line, prev.name, prev.explanation)
            continue
        name, colon, _ = line.partition(":")
        name = name.strip()
        if not colon:
            out.append(Line("text", line))
            continue
        full = COMPACT.get(name.lower(), name) if len(name) == 1 else name
        out.append(Line("header", line, full, ex.header(name)))
    if sep:
        out.append(Line("blank", ""))
        is_sdp = body.lstrip().startswith("v=")
        for line in body.split("\n"):
            if not line:
                continue
            if is_sdp and len(line) > 1 and line[1] == "=":
                out.append(_sdp_line(line, ex))
            else:
                out.append(Line("text", line))
    return out
