"""HEP collector: receives HEP v1/v2/v3 from capture agents (Kamailio siptrace, heplify, captagent...)
on UDP and TCP (same address and port, default ``127.0.0.1:9060``) and publishes SIP records to a sink.

Per packet: decode (:func:`producers.hep.decode_hep`) -> optional auth-key check -> keep-alives and
non-SIP payload types (RTCP reports, logs...) counted and skipped -> SIP parsed
(:func:`producers.sip_parser.parse_sip`) -> :class:`~sipscope.records.SipMessage`
(:func:`producers.sip_record.to_record`) -> ``sink.publish``.

Bad input never stops the server: a packet that cannot be used becomes a
:class:`~sipscope.records.Rejected` (``stage="hep"``, stable reason, raw bytes) sent to ``sink.reject``
and counted, both on :attr:`HepCollector.stats` and in the Prometheus counters of
:mod:`producers.metrics`. Reasons besides the codec's (see :mod:`producers.hep`):
``hep_auth_failed``, ``hep_missing_address``, ``hep_stream_garbage`` (bytes skipped on a TCP stream
to resynchronise on ``HEP3``), the SIP parser's own reasons (:class:`producers.sip_parser.SipParseError`,
raw bytes = the SIP payload), and ``internal_error`` (a bug or a failing sink, logged with its traceback).

Time: ``SipMessage.ts`` is the packet's HEP time; a packet without time chunks (HEPv1, some agents)
gets the collector's arrival time, the closest thing to a capture time there is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from producers import metrics
from producers.hep import PROTO_SIP, HepDecodeError, HepPacket, decode_hep, split_hep_stream
from producers.sinks import Sink
from producers.sip_parser import SipParseError, parse_sip
from producers.sip_record import to_record
from sipscope.logs import get_logger
from sipscope.numbers import NumberPlan
from sipscope.records import Rejected

log = get_logger(__name__)

STAGE = "hep"
DEFAULT_LISTEN = "127.0.0.1:9060"

# IP protocol numbers -> SipMessage.transport. 22 (IDP) and 50 (ESP) are the "fake" numbers
# Kamailio's siptrace puts in HEP for TLS and WebSocket.
_TRANSPORTS = {17: "udp", 6: "tcp", 132: "sctp", 22: "tls", 50: "ws"}


def transport_of(ip_proto: int, src_port: int, dst_port: int) -> str:
    """``SipMessage.transport`` for a HEP packet: TCP to or from port 5061 is ``tls``."""
    name = _TRANSPORTS.get(ip_proto, f"ipproto-{ip_proto}")
    if name == "tcp" and 5061 in (src_port, dst_port):
        return "tls"
    return name


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` -> ``(host, port)`` (host defaults to loopback)."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = "", listen
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"bad listen address {listen!r}, want HOST:PORT") from None


@dataclass
class CollectorStats:
    """In-process counts (the Prometheus counters hold the same numbers across collectors)."""

    packets: int = 0
    """HEP packets received (UDP datagrams + packets cut from TCP streams)."""
    sip_messages: int = 0
    """SIP messages published to the sink."""
    keepalives: int = 0
    stream_bytes_skipped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    """Rejected inputs by reason."""
    skipped: Counter[int] = field(default_factory=Counter)
    """Non-SIP HEP packets by proto type (5 RTCP, 100 log...)."""


class HepCollector:
    """The HEP server. ``await start()`` binds UDP and TCP on ``host:port`` (port 0 picks a free port,
    the same for both, see :attr:`port`); ``await stop()`` closes them and flushes the sink.

    :meth:`handle_datagram` is the whole per-packet pipeline and can be called directly (tests, replay).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        host: str = "127.0.0.1",
        port: int = 9060,
        auth_key: str | None = None,
        plan: NumberPlan | None = None,
        node_default: str = "",
        correlation_headers: Sequence[str] = (),
        source: str = "hep",
    ) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self.auth_key = auth_key
        self.plan = plan or NumberPlan()
        self.node_default = node_default
        self.correlation_headers = tuple(correlation_headers)
        self.source = source
        self.stats = CollectorStats()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP then TCP on the same port. With port 0, retries when the TCP twin of a free UDP port
        is taken."""
        for _attempt in range(20):
            udp = await self._bind_udp(self.port)
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_stream, self.host, port)
            except OSError as exc:
                udp.close()
                if self.port or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp, self.port = udp, port
            log.info("hep_collector_listening", host=self.host, port=port, auth=self.auth_key is not None)
            return
        raise OSError(errno.EADDRINUSE, "no free port for both UDP and TCP")

    async def _bind_udp(self, port: int) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, port)
        )
        return transport

    async def stop(self) -> None:
        """Stop listening, close open TCP connections, flush the sink."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None
        self.sink.flush()

    async def __aenter__(self) -> HepCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- input -------------------------------------------------------------------------------------

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        buf = bytearray()
        try:
            while data := await reader.read(65536):
                buf += data
                self._feed_stream(buf)
            if buf:
                self._reject("hep_truncated", f"stream closed inside a packet ({len(buf)} bytes)", bytes(buf))
        except ConnectionError as exc:
            log.info("hep_tcp_connection_lost", error=str(exc))
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _feed_stream(self, buf: bytearray) -> None:
        """Process the complete packets at the start of ``buf`` and remove them (and garbage) from it."""
        split = split_hep_stream(buf)
        del buf[: split.consumed]
        if split.skipped:
            self.stats.stream_bytes_skipped += split.skipped
            self._reject("hep_stream_garbage", f"skipped {split.skipped} bytes to resynchronise on HEP3", b"")
        for packet in split.packets:
            self.handle_datagram(packet)

    def handle_datagram(self, data: bytes) -> None:
        """Process one HEP packet. Never raises: problems become Rejected records."""
        self.stats.packets += 1
        metrics.CAPTURE_PACKETS.labels(source=self.source).inc()
        try:
            packet = decode_hep(data)
        except HepDecodeError as exc:
            self._reject(exc.reason, exc.detail, data)
            return
        try:
            self._handle_packet(packet, data)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one packet, not the server
            log.exception("hep_packet_failed")
            self._reject("internal_error", f"{type(exc).__name__}: {exc}", data, packet)

    def _handle_packet(self, packet: HepPacket, data: bytes) -> None:
        if self.auth_key is not None and not _same_key(packet.auth_key, self.auth_key):
            detail = "auth key missing" if packet.auth_key is None else "auth key mismatch"
            self._reject("hep_auth_failed", detail, data, packet)
            return
        if not packet.payload and packet.keepalive is not None:
            self.stats.keepalives += 1
            return
        if packet.proto_type != PROTO_SIP:
            self.stats.skipped[packet.proto_type] += 1
            metrics.HEP_SKIPPED.labels(proto_type=str(packet.proto_type)).inc()
            return
        if not packet.src_ip or not packet.dst_ip:
            self._reject("hep_missing_address", "no source/destination address chunk", data, packet)
            return
        self._publish_sip(packet)

    def _publish_sip(self, packet: HepPacket) -> None:
        try:
            parsed = parse_sip(packet.payload, self.correlation_headers)
        except SipParseError as exc:
            self._reject(exc.reason, exc.detail, packet.payload, packet)
            return
        record = to_record(
            parsed,
            ts=self._ts(packet),
            src_ip=packet.src_ip,
            src_port=packet.src_port,
            dst_ip=packet.dst_ip,
            dst_port=packet.dst_port,
            transport=transport_of(packet.ip_proto, packet.src_port, packet.dst_port),
            node=self._node(packet),
            direction="",
            correlation_id=packet.correlation_id or None,
            plan=self.plan,
        )
        self.sink.publish(record)
        self.stats.sip_messages += 1
        metrics.SIP_MESSAGES.labels(source=self.source).inc()

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _ts(packet: HepPacket) -> float:
        return packet.ts if packet.ts > 0 else time.time()

    def _node(self, packet: HepPacket | None) -> str:
        if packet is not None and packet.node_name:
            return packet.node_name
        if packet is not None and packet.capture_id:
            return str(packet.capture_id)
        return self.node_default

    def _reject(self, reason: str, detail: str, raw: bytes, packet: HepPacket | None = None) -> None:
        self.stats.rejected[reason] += 1
        metrics.REJECTED.labels(source=self.source, reason=reason).inc()
        where = {}
        if packet is not None:
            where = {
                "ts": packet.ts or None,
                "src_ip": packet.src_ip or None,
                "src_port": packet.src_port,
                "dst_ip": packet.dst_ip or None,
                "dst_port": packet.dst_port,
            }
        rej = Rejected(
            stage=STAGE,
            reason=reason,
            detail=detail,
            node=self._node(packet),
            raw_b64=base64.b64encode(raw).decode("ascii"),
            **where,
        )
        try:
            self.sink.reject(rej)
        except Exception:  # noqa: BLE001 - a failing sink is logged, the server goes on
            log.exception("hep_reject_failed", reason=reason)


def _same_key(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a packet's auth key with the configured one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, collector: HepCollector) -> None:
        self._collector = collector

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._collector.handle_datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.warning("hep_udp_error", error=str(exc))


async def serve(
    listen: str,
    sink: Sink,
    auth_key: str | None = None,
    plan: NumberPlan | None = None,
    node_default: str = "",
    correlation_headers: Sequence[str] = (),
) -> None:
    """Run a collector on ``listen`` (``HOST:PORT``) until cancelled; stops it and flushes the sink."""
    host, port = parse_listen(listen)
    collector = HepCollector(
        sink, host=host, port=port, auth_key=auth_key, plan=plan, node_default=node_default,
        correlation_headers=correlation_headers,
    )
    await collector.start()
    try:
        await asyncio.Event().wait()
    finally:
        await collector.stop()
