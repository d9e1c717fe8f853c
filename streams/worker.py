"""The Faust-free half of ``sipscope worker``: one source partition's correlation state and its table entries.

:mod:`streams.app` is the Faust adapter; everything it decides is here, so it can be tested with plain
dicts standing in for the changelog-backed tables.

Partition shard
    Each assigned partition of ``sip.messages`` gets its own :class:`Shard`: a
    :class:`~streams.engine.Correlator` with its own event-time watermark (partitions are consumed at
    different paces, so one partition's time must never close another's calls). Messages are keyed by
    Call-ID, so a call's messages all reach one shard, in order.

Table entries (:class:`Entry`, msgspec JSON; table key = Call-ID)
    * an open leg / REGISTER chain: ``state`` (the engine's exported state), ``p`` (partition) and ``o``
      (offset of the last ``sip.messages`` record applied to it);
    * a finished one: a *marker* with ``done`` (event time it closed), ``cseq`` and ``o`` (its last
      message's offset), kept ``done_keep_s`` of wall time (and ``closed_memory_s`` of event time),
      then deleted.

Crash and restart (at-least-once input)
    Faust commits input offsets only after the producer flushed everything the processed messages caused
    (summaries and table writes), so after a crash the worker re-reads at most the messages since the last
    commit, with tables that may already contain their effects. Two rules make that replay idempotent:

    1. A message whose offset is at or below the ``o`` of its Call-ID's entry (open or marker) was already
       applied before the crash: it only moves event time (:meth:`Shard.feed` skips it).
    2. A marker is written only once the final summary it stands for is acknowledged by Kafka
       (:attr:`Writes.after_ack`); until then the table keeps the open state, so a crash in between replays
       the call to the same summary, same ``id``, instead of losing it.

    Guarantee: every call's final summary reaches ``sip.calls`` at least once; a crash can repeat one
    (same ``id``, same content) but never yields a second, different final summary or a lost one. So
    counted by ``id`` it is exactly once; the indexer collapses the repeats by document id.

What a restart does not bring back: the B2BUA leg heuristic's in-memory index (legs whose partner arrived
before the restart are not linked by the heuristic; header-based correlation ids are unaffected) and the
registration tracker's memory of closed chains (``closed_memory_s``).
"""

from __future__ import annotations

import base64
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sipscope import records
from sipscope.records import CallSummary, Registration, Rejected, SipMessage
from sipscope.settings import CorrelationSettings
from streams.callstate import CallState
from streams.engine import Correlator, Output
from streams.registrations import RegState

STAGE = "worker"
CALLS = "calls"
REGISTRATIONS = "registrations"
"""Table names (the changelog topics are ``<app_id>-<name>-changelog``)."""


class CallEntry(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Value of the ``calls`` table (see the module docstring)."""

    p: int
    o: int
    state: CallState | None = None
    done: float | None = None
    cseq: int | None = None


class RegEntry(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Value of the ``registrations`` table."""

    p: int
    o: int
    state: RegState | None = None
    done: float | None = None
    cseq: int | None = None


Entry = CallEntry | RegEntry
_enc = msgspec.json.Encoder()
_dec = {CALLS: msgspec.json.Decoder(CallEntry), REGISTRATIONS: msgspec.json.Decoder(RegEntry)}


def decode_entry(table: str, data: bytes) -> Entry:
    return _dec[table].decode(data)


# -- input records --------------------------------------------------------------------------------------

def rejected(data: bytes | None, reason: str, detail: str, msg: SipMessage | None = None) -> Rejected:
    """A ``sip.rejected`` record for an input the worker could not use (the raw bytes go with it)."""
    raw = base64.b64encode(data).decode() if data else ""
    if msg is None:
        return Rejected(stage=STAGE, reason=reason, detail=detail[:500], raw_b64=raw)
    return Rejected(stage=STAGE, reason=reason, detail=detail[:500], ts=msg.ts, src_ip=msg.src_ip,
                    src_port=msg.src_port, dst_ip=msg.dst_ip, dst_port=msg.dst_port, node=msg.node, raw_b64=raw)


def decode_message(data: bytes | None) -> SipMessage | Rejected:
    """A ``sip.messages`` value -> the record, or a :class:`Rejected` with reason ``bad_record`` (not JSON,
    not a SipMessage) or ``unsupported_schema_version`` (a JSON object whose ``v`` is another version)."""
    if not data:
        return rejected(data, "bad_record", "empty value")
    try:
        return records.decode(data, SipMessage)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        reason = "bad_record"
        try:
            obj = msgspec.json.decode(data)
        except msgspec.DecodeError:
            obj = None
        if isinstance(obj, dict) and "v" in obj and obj["v"] != records.SIP_MESSAGE_VERSION:
            reason = "unsupported_schema_version"
        return rejected(data, reason, str(exc))


# -- the shard ------------------------------------------------------------------------------------------

Write = tuple[str, bytes, bytes | None]
"""``(table, key, value)``; value None deletes the key."""


@dataclass
class Writes:
    """Table writes caused since the last :meth:`Shard.collect`."""

    now: list[Write] = field(default_factory=list)
    """Open states and marker deletions: write at once."""
    after_ack: list[Write] = field(default_factory=list)
    """Markers of finished calls/chains: write only after their summaries are acknowledged."""


class _Done:
    __slots__ = ("cseq", "o", "ts", "wall")

    def __init__(self, o: int, ts: float, cseq: int | None, wall: float) -> None:
        self.o, self.ts, self.cseq, self.wall = o, ts, cseq, wall


class _Book:
    """Offsets and markers of one tracker (calls or registrations) of one shard."""

    def __init__(self, table: str, entry_cls: type) -> None:
        self.table = table
        self.entry_cls = entry_cls
        self.offsets: dict[str, int] = {}
        """Open Call-ID -> offset of the last message applied to it (as of the last :meth:`Shard.collect`)."""
        self.done: dict[str, _Done] = {}
        """Finished Call-ID -> its marker."""
        self.expiry: deque[tuple[float, str, _Done]] = deque()
        """Markers in order of writing (wall time)."""
        self.batch: dict[str, int] = {}
        """Call-ID -> offset of its last message fed since the last collect."""


class Cursor:
    """Where the records of one input partition are: what the Faust adapter (``streams/app.py``) needs to see
    offsets Faust never delivered and to refetch them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.position = -1
        """Offset of the last record read; before any, the offset before the first one to read."""
        self.anchored = False
        """``position`` is known: set from the committed or the earliest offset at assignment, or a record was
        read. Only then can a hole in the delivered offsets be seen."""
        self.rewind: tuple[int, float] | None = None
        """``(offset, give-up wall time)`` while the consumer was sought back to refetch a hole."""
        self.last_message_wall = clock()
        """Wall time of the last record read (idle detection); the load time before any."""

    def anchor(self, next_offset: int) -> None:
        """The next record to read is at ``next_offset``."""
        self.position, self.anchored = next_offset - 1, True

    def note(self, offset: int, wall: float | None = None) -> None:
        """A record at ``offset`` was read (also one rejected before it was applied)."""
        self.position = offset
        self.anchored = True
        self.last_message_wall = self.clock() if wall is None else wall


class Shard(Cursor):
    """Correlation state of one ``sip.messages`` partition (see the module docstring); as a :class:`Cursor`,
    where its records are.

    ``note(offset)`` for every record read, ``feed(offset, msg)`` for every message and ``advance(now)`` per
    tick return the summaries to publish; ``collect()`` then returns the table writes they caused (call it
    once per batch: the writes of a batch are coalesced per Call-ID).
    """

    def __init__(self, partition: int, settings: CorrelationSettings, *, done_keep_s: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.partition = partition
        self.settings = settings
        self.corr = Correlator(settings, track_changes=True)
        self.done_keep_s = done_keep_s
        self._calls = _Book(CALLS, CallEntry)
        self._regs = _Book(REGISTRATIONS, RegEntry)
        self.stats = {"messages": 0, "replayed": 0, "loaded_open": 0, "loaded_done": 0}

    # -- restore --------------------------------------------------------------------------------------

    def load(self, table: str, key: bytes, entry: Entry) -> None:
        """Put back one table entry (call :meth:`loaded` once all are loaded)."""
        book = self._calls if table == CALLS else self._regs
        cid = key.decode()
        if entry.state is not None:
            book.offsets[cid] = entry.o
            if table == CALLS:
                self.corr.calls.import_call(entry.state)
            else:
                self.corr.registrations.import_chain(entry.state)
            self.stats["loaded_open"] += 1
        elif entry.done is not None:
            d = _Done(entry.o, entry.done, entry.cseq, self.clock())
            book.done[cid] = d
            book.expiry.append((d.wall, cid, d))
            self.stats["loaded_done"] += 1

    def loaded(self) -> None:
        """Give the call tracker the finished calls it must still recognise (stray copies of their INVITE)."""
        closed = {cid: [d.ts, d.cseq] for cid, d in self._calls.done.items() if d.cseq is not None}
        if closed:
            self.corr.calls.restore({"closed": closed, "watermark": max(v[0] for v in closed.values())})
        self.corr.calls.take_changes()
        self.corr.registrations.take_changes()

    # -- processing -----------------------------------------------------------------------------------

    @property
    def watermark(self) -> float:
        return self.corr.watermark

    def feed(self, offset: int, msg: SipMessage) -> list[Output]:
        """One message at ``offset`` of this partition -> the summaries it caused."""
        self.stats["messages"] += 1
        cid = msg.call_id
        book = self._regs if msg.cseq_method == "REGISTER" else self._calls
        last = book.offsets.get(cid)
        if last is None:
            done = book.done.get(cid)
            if done is not None and offset <= done.o:
                last = done.o
        if last is not None and offset <= last:  # applied before a crash: only moves event time
            self.stats["replayed"] += 1
            return self.corr.advance(msg.ts)
        book.batch[cid] = offset
        return self.corr.feed(msg)

    def advance(self, now: float) -> list[Output]:
        return self.corr.advance(now)

    # -- table writes ---------------------------------------------------------------------------------

    def collect(self) -> Writes:
        """Table writes since the last call (see :class:`Writes`), and markers that expired."""
        w = Writes()
        now = self.clock()
        self._collect(self._calls, self.corr.calls.take_changes(), self.corr.calls.live_call,
                      self._closed_call, w, now)
        self._collect(self._regs, self.corr.registrations.take_changes(), self.corr.registrations.live_chain,
                      self._closed_reg, w, now)
        return w

    def _collect(self, book: _Book, changed: set[str], live: Callable[[str], Any],
                 closed: Callable[[str], tuple[float, int | None]], w: Writes, now: float) -> None:
        p = self.partition
        batch, offsets, done = book.batch, book.offsets, book.done
        for cid in changed:
            o = batch.get(cid)
            state = live(cid)  # the live struct, encoded at once below
            if state is not None:
                if o is None:
                    o = offsets.get(cid)
                    if o is None:  # cannot happen: every open leg was fed or loaded here
                        continue
                offsets[cid] = o
                done.pop(cid, None)
                w.now.append((book.table, cid.encode(), _enc.encode(book.entry_cls(p=p, o=o, state=state))))
                continue
            last = offsets.pop(cid, None)
            if o is None:
                o = last
                if o is None:
                    continue
            ts, cseq = closed(cid)
            d = _Done(o, ts, cseq, now)
            done[cid] = d
            book.expiry.append((now, cid, d))
            w.after_ack.append(self._marker(book, cid, d))
        for cid, o in batch.items():
            if cid in changed:
                continue
            d = done.get(cid)
            if d is not None and o > d.o:  # a stray copy for a finished call: its marker moves on
                d.o = o
                w.now.append(self._marker(book, cid, d))
            elif cid in offsets and o > offsets[cid]:
                offsets[cid] = o  # a message that changed nothing (the table entry's offset may lag)
        batch.clear()
        keep_event = self.watermark - self.settings.closed_memory_s
        wall_limit = now - self.done_keep_s
        expiry = book.expiry
        while expiry and expiry[0][0] <= wall_limit:
            _wall, cid, d = expiry[0]
            if d.ts > keep_event:
                break  # event time has not moved on enough yet
            expiry.popleft()
            if done.get(cid) is d:
                del done[cid]
                if cid not in offsets:
                    w.now.append((book.table, cid.encode(), None))

    def _marker(self, book: _Book, cid: str, d: _Done) -> Write:
        entry = book.entry_cls(p=self.partition, o=d.o, done=d.ts, cseq=d.cseq)
        return (book.table, cid.encode(), _enc.encode(entry))

    def _closed_call(self, cid: str) -> tuple[float, int | None]:
        # the tracker's memory of closed Call-IDs: (close time, CSeq of the last initial INVITE)
        entry = self.corr.calls._closed.get(cid)
        return (entry[0], entry[1]) if entry else (self.watermark, None)

    def _closed_reg(self, cid: str) -> tuple[float, int | None]:
        entry = self.corr.registrations._last_cseq.get(cid)
        return (entry[0], entry[1]) if entry else (self.watermark, None)

    def open_counts(self) -> tuple[int, int]:
        return len(self.corr.calls), len(self.corr.registrations)


def split_outputs(outputs: Iterable[Output]) -> tuple[list[CallSummary], list[Registration]]:
    calls: list[CallSummary] = []
    regs: list[Registration] = []
    for rec in outputs:
        (calls if type(rec) is CallSummary else regs).append(rec)  # type: ignore[arg-type]
    return calls, regs


# -- KPIs and anomaly detection: one instance over the three topics -------------------------------------

SNAPSHOT_CHUNK = 512 * 1024
"""Largest table value of a snapshot chunk (Kafka's default record limit is 1 MB)."""
_MANIFEST = b"analytics:manifest"


class _Manifest(msgspec.Struct):
    gen: int
    chunks: int
    size: int


class Analytics:
    """:class:`~streams.kpis.KpiRollup` and :class:`~streams.anomaly.engine.AnomalyEngine` fed by
    ``sip.messages``, ``sip.calls`` and ``sip.registrations`` (their detectors key on IPs, trunks and
    numbers, not Call-IDs, so one instance must see every record; see ``sipscope worker --role analytics``).

    Restart: :meth:`snapshot` holds both engines' state and, per input topic-partition, the offset of
    the last record applied. The Faust adapter acknowledges input only once a snapshot covering it was
    written, so committed offsets never pass the snapshot; after a restart the records between the
    committed offset and the snapshot's are skipped (:meth:`feed`), so nothing is counted twice and nothing
    is lost. KPI rows and alerts have stable ids: the ones re-emitted after a crash are upserts.
    """

    def __init__(self, settings: Any, *, kpi: Any = None, anomaly: Any = None,
                 offsets: dict[str, int] | None = None, watermark: float | None = None) -> None:
        from streams.anomaly.engine import AnomalyEngine
        from streams.kpis import KpiRollup

        self.settings = settings
        self.kpi = kpi if kpi is not None else KpiRollup.from_settings(settings)
        self.anomaly = anomaly if anomaly is not None else AnomalyEngine.from_settings(settings)
        self.offsets: dict[str, int] = dict(offsets or {})
        """``topic:partition`` -> offset of the last record applied."""
        self.watermark = watermark
        """Largest capture time of the messages seen (drives the KPI minutes and the detectors' clocks)."""
        self.replayed = 0
        self.gen = 0
        self._prev_chunks = 0

    def feed(self, tp: str, offset: int, rec: SipMessage | CallSummary | Registration) -> list[Any]:
        """One record of ``tp`` (``topic:partition``) at ``offset`` -> alerts it raised."""
        last = self.offsets.get(tp)
        if last is not None and offset <= last:
            self.replayed += 1
            return []
        self.offsets[tp] = offset
        t = type(rec)
        if t is SipMessage:
            if self.watermark is None or rec.ts > self.watermark:  # type: ignore[union-attr]
                self.watermark = rec.ts  # type: ignore[union-attr]
            self.kpi.add_message(rec)
            return self.anomaly.feed_message(rec)
        if t is CallSummary:
            self.kpi.add_call(rec)
            return self.anomaly.feed_call(rec)
        self.kpi.add_registration(rec)
        return self.anomaly.feed_registration(rec)

    def advance(self, now: float | None = None) -> list[Any]:
        """KPI rows due and alerts due at ``now`` (default: the watermark)."""
        if now is not None and (self.watermark is None or now > self.watermark):
            self.watermark = now
        if self.watermark is None:
            return []
        return self.kpi.close_until(self.watermark) + self.anomaly.advance(self.watermark)

    def snapshot(self) -> list[Write]:
        """Table writes of a new snapshot generation: its chunks, then the manifest, then deletions of the
        previous generation's chunks (a crash in between leaves the previous generation whole)."""
        blob = msgspec.msgpack.encode({"v": 1, "offsets": self.offsets, "watermark": self.watermark,
                                       "kpi": self.kpi.to_state(), "anomaly": self.anomaly.to_state()})
        self.gen += 1
        parts = [blob[i:i + SNAPSHOT_CHUNK] for i in range(0, len(blob), SNAPSHOT_CHUNK)] or [b""]
        writes: list[Write] = [("analytics", b"analytics:%d:%d" % (self.gen, i), part) for i, part in enumerate(parts)]
        writes.append(("analytics", _MANIFEST, _enc.encode(_Manifest(self.gen, len(parts), len(blob)))))
        writes += [("analytics", b"analytics:%d:%d" % (self.gen - 1, i), None) for i in range(self._prev_chunks)]
        self._prev_chunks = len(parts)
        return writes

    @classmethod
    def restore(cls, settings: Any, data: Any) -> Analytics:
        """From the table's contents (``key -> value``); a fresh instance when there is no snapshot."""
        from streams.anomaly.engine import AnomalyEngine, default_trunk_lookup
        from streams.kpis import KpiRollup

        raw = data.get(_MANIFEST)
        if not raw:
            return cls(settings)
        man = msgspec.json.decode(raw, type=_Manifest)
        blob = b"".join(data[b"analytics:%d:%d" % (man.gen, i)] for i in range(man.chunks))
        if len(blob) != man.size:
            raise ValueError(f"analytics snapshot {man.gen}: {len(blob)} bytes, manifest says {man.size}")
        state = msgspec.msgpack.decode(blob)
        kw = {"trunk_of": default_trunk_lookup(settings), "dup_window_s": settings.correlation.dedup_window_s,
              "same_node_window_s": settings.correlation.dedup_same_node_window_s}
        kpi = KpiRollup.from_state(state["kpi"], settings.kpi, **kw)
        anomaly = AnomalyEngine.from_state(state["anomaly"], settings.anomaly, **kw)
        self = cls(settings, kpi=kpi, anomaly=anomaly, offsets=state["offsets"], watermark=state["watermark"])
        self.gen, self._prev_chunks = man.gen, man.chunks
        return self
