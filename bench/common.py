"""Helpers shared by the benchmarks: CPU-time measurement of our code and of child processes."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_PCAPS = ROOT.parent / "shared" / "testdata" / "pcaps"


@dataclass
class Measure:
    name: str
    items: int
    cpu_s: float
    wall_s: float

    @property
    def per_core(self) -> float:
        return self.items / self.cpu_s if self.cpu_s else float("inf")

    @property
    def per_wall(self) -> float:
        return self.items / self.wall_s if self.wall_s else float("inf")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class timed:
    """CPU time of this process and its (waited-for) children, plus wall time."""

    def __enter__(self):
        self.c0, self.s0, self.w0 = _children_cpu(), _self_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = (_children_cpu() - self.c0) + (_self_cpu() - self.s0)
        self.wall = time.perf_counter() - self.w0


def run_child(cmd: list[str]) -> tuple[str, float, float]:
    with timed() as t:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return out, t.cpu, t.wall


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete a benchmark's topics (every topic whose name starts with ``prefix``)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    doomed = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if doomed:
        for f in admin.delete_topics(doomed, operation_timeout=30).values():
            f.result()
