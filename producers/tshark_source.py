"""SIP payloads through tshark: TLS decryption with an NSS key log, and live capture from an interface.

tshark (Wireshark's dissectors) decrypts TLS given an ``SSLKEYLOGFILE``-format key log (``-o
tls.keylog_file:F``), reassembles TCP, and exposes each SIP message's decrypted bytes as the ``sip_raw``
field of its JSON output (``-T json -x``). We read that output incrementally, one packet object at a
time, and hand the raw SIP bytes with their addresses and capture time to the same pure parser as every
other source. Files without a key log use the faster pure-Python path (:mod:`producers.pcap_source`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from producers.pcap_source import Payload

LAYERS = "frame ip ipv6 udp tcp sctp tls sip"


class TsharkError(RuntimeError):
    """tshark is missing or failed (the message names the cause)."""


def bpf_for_ports(ports: list[int]) -> str:
    """Default live capture filter: SIP ports over UDP, TCP and SCTP, plus IP fragments (fragmented INVITEs)."""
    p = " or ".join(f"port {x}" for x in ports)
    return f"({p}) or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)"


def tshark_command(
    *, read: str | Path | None = None, interface: str | None = None, keylog: str | Path | None = None,
    bpf: str | None = None, tls_ports: list[int] | None = None, tshark: str | None = None,
) -> list[str]:
    exe = tshark or shutil.which("tshark")
    if not exe:
        raise TsharkError("tshark not found (apt-get install tshark; `make setup` installs it as root)")
    cmd = [exe, "-n", "-l", "-Q"]
    if read is not None:
        cmd += ["-r", str(read)]
    elif interface is not None:
        cmd += ["-i", interface]
        if bpf:
            cmd += ["-f", bpf]
    else:
        raise ValueError("read or interface is required")
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    ports = ",".join(str(p) for p in (tls_ports or [5061]))
    cmd += ["-o", f"sip.tls.port:{ports.split(',')[0]}", "-d", f"tls.port=={ports},sip",
            "-Y", "sip", "-T", "json", "-x", "--no-duplicate-keys", "-j", LAYERS]
    return cmd


def _first(layer: dict, key: str) -> str | None:
    v = layer.get(key)
    if isinstance(v, list):
        return v[0] if v else None
    return v


def packet_payloads(pkt: dict) -> list[Payload]:
    """The SIP messages of one tshark JSON packet object (several when one segment carries several)."""
    layers = pkt.get("_source", {}).get("layers", {})
    frame = layers.get("frame", {})
    ts = float(_first(frame, "frame.time_epoch") or 0.0)
    ip = layers.get("ip") or layers.get("ipv6") or {}
    if isinstance(ip, list):  # tunnels: the innermost IP header carries the SIP
        ip = ip[-1]
    src = _first(ip, "ip.src") or _first(ip, "ipv6.src") or ""
    dst = _first(ip, "ip.dst") or _first(ip, "ipv6.dst") or ""
    transport, sport, dport = "udp", 0, 0
    for name in ("tcp", "udp", "sctp"):
        l4 = layers.get(name)
        if l4:
            if isinstance(l4, list):
                l4 = l4[-1]
            transport = name
            sport = int(_first(l4, f"{name}.srcport") or 0)
            dport = int(_first(l4, f"{name}.dstport") or 0)
            break
    if transport == "tcp" and layers.get("tls"):
        transport = "tls"
    raw = layers.get("sip_raw")
    if not raw:
        return []
    chunks = raw if isinstance(raw[0], list) else [raw]
    return [Payload(ts=ts, src_ip=src, src_port=sport, dst_ip=dst, dst_port=dport, transport=transport,
                    data=bytes.fromhex(c[0])) for c in chunks]


def iter_json_packets(lines) -> Iterator[dict]:
    """Incrementally split tshark's ``-T json`` array into packet objects (it prints one per ``  {``..``  }``)."""
    buf: list[str] = []
    for line in lines:
        if line.startswith("  {"):
            buf = [line]
        elif buf:
            if line.startswith("  }"):
                buf.append("  }")
                yield json.loads("".join(buf))
                buf = []
            else:
                buf.append(line)


def iter_tshark_payloads(cmd: list[str], stderr_path: Path | None = None) -> Iterator[Payload]:
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1 << 16)
    try:
        assert proc.stdout is not None
        for pkt in iter_json_packets(proc.stdout):
            yield from packet_payloads(pkt)
        rc = proc.wait()
        if rc not in (0, -2, 130):
            raise TsharkError(f"tshark exited with {rc}" + (f" (read {stderr_path})" if stderr_path else ""))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if stderr_path:
            err.close()  # type: ignore[union-attr]
