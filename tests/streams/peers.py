"""Real SIP peers on loopback for the streams tests: kamailio, sipp and dumpcap started and stopped by
their own process ids, ports picked free, the capture read back through the producers (the ``sipscope
parse`` path)."""

from __future__ import annotations

import contextlib
import glob
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sipscope.records import SipMessage
from sipscope.settings import Settings


def need(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (make setup installs it as root)")
    return path


def module_dir() -> str:
    for pattern in ("/usr/lib/*/kamailio/modules", "/usr/lib*/kamailio/modules", "/usr/local/lib*/kamailio/modules"):
        for d in sorted(glob.glob(pattern)):
            if Path(d, "textops.so").is_file() and Path(d, "sl.so").is_file():
                return d
    pytest.skip("kamailio's sl/textops modules are not installed")


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def udp_bound(host: str, port: int) -> bool:
    want = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == want for line in table.readlines()[1:])


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def spawn(args: list[str], cwd: Path, log: str, **kw) -> subprocess.Popen:
    with open(cwd / log, "wb") as out:
        return subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=kw.pop("stderr", out),
                                start_new_session=True, **kw)


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (and the children of its session, e.g. kamailio's workers), by its id."""
    if proc is None or proc.poll() is not None:
        return
    for s, grace in ((sig, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
            return


def start_dumpcap(dumpcap: str, ports: list[int], out: Path, cwd: Path) -> subprocess.Popen:
    bpf = " or ".join(f"udp port {p}" for p in ports)
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", bpf, "-w", str(out)], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    seen = b""
    deadline = time.monotonic() + 15
    while b"Capturing on" not in seen:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.skip(f"dumpcap cannot capture on lo: {seen.decode(errors='replace')[-300:]}")
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
    time.sleep(0.3)
    return proc


def messages(path: Path) -> list[SipMessage]:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    settings = Settings()
    recs = [r for r in records_from(file_payloads(str(path), None, settings), _options(settings, "parse"), Stats())
            if isinstance(r, SipMessage)]
    recs.sort(key=lambda m: m.ts)
    return recs


KAMAILIO_PREAMBLE = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:{host}:{port}
mpath="{mpath}"

"""


def start_kamailio(kamailio: str, cwd: Path, host: str, port: int, mpath: str, modules: list[str],
                   script: str) -> subprocess.Popen:
    """Kamailio on ``host:port`` (UDP only, two children, logging to ``kamailio.log`` in ``cwd``) with
    ``modules`` loaded and ``script`` (its routing blocks) after them."""
    cfg = KAMAILIO_PREAMBLE.format(host=host, port=port, mpath=mpath)
    cfg += "".join(f'loadmodule "{m}.so"\n' for m in modules) + "\n" + script
    (cwd / "kamailio.cfg").write_text(cfg)
    (cwd / "run").mkdir(exist_ok=True)
    return spawn([kamailio, "-f", str(cwd / "kamailio.cfg"), "-DD", "-E", "-m", "32", "-M", "8",
                  "-Y", str(cwd / "run"), "-P", str(cwd / "run" / "kamailio.pid")], cwd, "kamailio.log")
