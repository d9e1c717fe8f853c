"""Where the capture agents put their output: the :class:`Sink` protocol and two small sinks.

A sink receives :class:`~sipscope.records.SipMessage` records (topic ``sip.messages``) and
:class:`~sipscope.records.Rejected` records (topic ``sip.rejected``). Sources call it from one thread
(the asyncio loop or the pcap reader), so sinks need no locking.

* :class:`JsonlSink` - one JSON object per line (``records.encode``), to a file path or an open stream.
* :class:`MemorySink` - keeps everything in lists, for tests.
"""

from __future__ import annotations

import io
import os
from typing import IO, Protocol, runtime_checkable

from producers.metrics import PUBLISHED
from sipscope import records
from sipscope.records import Rejected, SipMessage


@runtime_checkable
class Sink(Protocol):
    def publish(self, msg: SipMessage) -> None:
        """Queue one SIP message for ``sip.messages``."""

    def reject(self, rej: Rejected) -> None:
        """Queue one rejected input for ``sip.rejected``."""

    def flush(self, timeout: float = 10) -> None:
        """Wait until everything queued is written (at most ``timeout`` seconds)."""

    def close(self) -> None:
        """Flush and release resources; the sink is unusable afterwards."""


class _Output:
    """A line writer over a path (opened for append, owned, block-buffered) or a binary/text stream
    (borrowed, flushed after each line so ``... | jq`` sees records as they come)."""

    def __init__(self, target: str | os.PathLike[str] | IO[bytes] | IO[str]) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._stream: IO[bytes] | IO[str] = open(target, "ab")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        self._text = isinstance(self._stream, io.TextIOBase)

    def write_line(self, data: bytes) -> None:
        if self._text:
            self._stream.write(data.decode() + "\n")  # type: ignore[arg-type]
        else:
            self._stream.write(data + b"\n")  # type: ignore[arg-type]
        if not self._owned:
            self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()
        else:
            self._stream.flush()


class JsonlSink:
    """Writes each record as one JSON line. Rejected records go to ``rejected`` when given, else to ``out``
    (tell them apart by the ``stage`` key, which only :class:`Rejected` has)."""

    name = "jsonl"

    def __init__(
        self,
        out: str | os.PathLike[str] | IO[bytes] | IO[str],
        rejected: str | os.PathLike[str] | IO[bytes] | IO[str] | None = None,
    ) -> None:
        self._out = _Output(out)
        self._rejected = _Output(rejected) if rejected is not None else self._out
        self._published = PUBLISHED.labels(sink=self.name)  # labels() per record cost 8% of a capture

    def publish(self, msg: SipMessage) -> None:
        self._out.write_line(records.encode(msg))
        self._published.inc()

    def reject(self, rej: Rejected) -> None:
        self._rejected.write_line(records.encode(rej))

    def flush(self, timeout: float = 10) -> None:
        self._out.flush()
        if self._rejected is not self._out:
            self._rejected.flush()

    def close(self) -> None:
        self._out.close()
        if self._rejected is not self._out:
            self._rejected.close()


class MemorySink:
    """Keeps records in :attr:`messages` and :attr:`rejected` (tests, offline analysis)."""

    name = "memory"

    def __init__(self) -> None:
        self.messages: list[SipMessage] = []
        self.rejected: list[Rejected] = []
        self.closed = False
        self._published = PUBLISHED.labels(sink=self.name)

    def publish(self, msg: SipMessage) -> None:
        self.messages.append(msg)
        self._published.inc()

    def reject(self, rej: Rejected) -> None:
        self.rejected.append(rej)

    def flush(self, timeout: float = 10) -> None:
        return None

    def close(self) -> None:
        self.closed = True
