"""`sipscope stack up|status|down` on a second, private stack (own ports and state dir), and its faults.

The session's shared stack is left alone: this module starts its own on ports 19xxx.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sipscope import stack as stackmod
from sipscope.settings import Settings

pytestmark = pytest.mark.stack


def _env(state: Path, **ports: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SIPSCOPE_STACK__STATE_DIR": str(state),
        "SIPSCOPE_STACK__KAFKA_PORT": str(ports.get("kafka", 19092)),
        "SIPSCOPE_STACK__KAFKA_CONTROLLER_PORT": str(ports.get("controller", 19093)),
        "SIPSCOPE_STACK__ES_PORT": str(ports.get("es", 19200)),
        "SIPSCOPE_STACK__ES_TRANSPORT_PORT": str(ports.get("transport", 19300)),
    })
    return env


def _sipscope(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sipscope.cli", "stack", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _our_java_pids(state: Path) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(state) in cmd and "java" in cmd:
                pids.append(int(p.name))
    return pids


@pytest.fixture
def private_state(tmp_path_factory):
    # under /var/tmp-like location the ES user can reach when we are root
    base = Path("/var/tmp") if os.geteuid() == 0 else tmp_path_factory.mktemp("stack")
    state = base / f"sipscope-lifecycle-{os.getpid()}"
    yield state
    _sipscope(_env(state), "down", timeout=120)
    subprocess.run(["rm", "-rf", str(state)], check=False)


def test_up_is_idempotent_status_reports_and_down_leaves_nothing(private_state, stack):
    env = _env(private_state)
    first = _sipscope(env, "up")
    assert first.returncode == 0, first.stderr
    second = _sipscope(env, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    st = _sipscope(env, "status", "--json")
    assert st.returncode == 0, st.stdout + st.stderr
    s = json.loads(st.stdout)
    assert s["kafka"]["address"] == "127.0.0.1:19092" and s["kafka"]["answering"]
    assert s["elasticsearch"]["address"] == "http://127.0.0.1:19200" and s["elasticsearch"]["answering"]
    assert _our_java_pids(private_state), "both JVMs run from the private state dir"
    down = _sipscope(env, "down", timeout=120)
    assert down.returncode == 0
    assert _our_java_pids(private_state) == []
    after = _sipscope(env, "status")
    assert after.returncode == 3 and "not answering" in after.stdout
    # the shared session stack was not touched
    assert stackmod.kafka_answers(stack.bootstrap)


def test_port_taken_is_one_clear_line_and_nothing_half_started(private_state, stack):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 19292))
    sock.listen()
    try:
        env = _env(private_state, es=19292, kafka=19192, controller=19193)
        out = _sipscope(env, "up")
        assert out.returncode == 1
        err = [l for l in out.stderr.splitlines() if "error" in l]
        assert len(err) == 1 and "19292" in err[0] and "already in use" in err[0], out.stderr
        assert _our_java_pids(private_state) == [], "Kafka started before the ES failure was stopped again"
    finally:
        sock.close()
    # `up` after a failed `up` recovers
    out = _sipscope(_env(private_state, es=19292, kafka=19192, controller=19193), "up")
    assert out.returncode == 0, out.stderr
    _sipscope(_env(private_state, es=19292, kafka=19192, controller=19193), "down", timeout=120)


def test_corrupt_cached_zip_is_fetched_again(tmp_path):
    settings = Settings()
    cache = tmp_path / "cache"
    cache.mkdir()
    paths = stackmod.Paths(state=tmp_path / "state", cache=cache)
    paths.es_zip.write_bytes(b"PK\x03\x04 this is not a zip")
    z = stackmod.ensure_es_zip(paths)
    with zipfile.ZipFile(z) as zf:
        assert any(n.endswith("bin/elasticsearch") for n in zf.namelist())


def test_missing_maven_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    paths = stackmod.Paths(state=tmp_path / "s", cache=tmp_path / "c")
    paths.cache.mkdir()
    with pytest.raises(stackmod.StackError, match="Maven"):
        stackmod.ensure_es_zip(paths)


def test_cluster_ids_never_start_with_a_dash():
    # an id starting with "-" made kafka.tools.StorageTool read it as an option (1 start in 64 failed)
    ids = [stackmod.new_cluster_id() for _ in range(5000)]
    assert all(not i.startswith("-") and len(i) == 22 for i in ids)
    assert len(set(ids)) == 5000
