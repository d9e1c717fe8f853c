"""`sipscope stack up|down|status`: a real local Kafka (KRaft) and Elasticsearch on loopback, no Docker.

* Apache Kafka from the Maven Central jars (``org.apache.kafka:kafka_2.13`` + log4j2's slf4j binding),
  resolved by the machine's Maven with ``infra/stack/kafka-pom.xml``; storage formatted with
  ``kafka.tools.StorageTool``; single node, broker + controller.
* Elasticsearch from Maven Central's ``org.elasticsearch.distribution.integ-test-zip:elasticsearch`` on a
  JDK 21+ (Elasticsearch 9 needs it); run as an unprivileged user when we are root (it refuses root).
  That zip lacks the ``rest-root`` module (``GET /``, the clients' ``info()``), so our own small plugin
  ``infra/stack/es-root-plugin`` is built with Maven against ``org.elasticsearch:elasticsearch`` and
  installed into the node's ``plugins/``.

Versions are pinned here, once. Downloads are cached under ``settings.stack.cache_dir``; data, logs and
pid files live under ``settings.stack.state_dir``. ``up`` is idempotent, ``down`` stops only the pids it
started. Every failure is one line naming the cause and the log file to read (:class:`StackError`).
"""

from __future__ import annotations

import argparse
import fcntl
import base64
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sipscope.settings import PROJECT_ROOT, Settings, get_settings

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
ES_VERSION = "9.2.4"
ES_MIN_JAVA = 21
KAFKA_MIN_JAVA = 17
ES_ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
INFRA_STACK = PROJECT_ROOT / "infra" / "stack"
ES_ROOT_PLUGIN_SRC = INFRA_STACK / "es-root-plugin"
ES_ROOT_PLUGIN = "sipscope-root"


class StackError(RuntimeError):
    """A stack operation failed; the message is one line naming the cause (and the log to read)."""


@dataclass(frozen=True)
class Paths:
    state: Path
    cache: Path

    @property
    def kafka_jars(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def es_zip(self) -> Path:
        return self.cache / f"elasticsearch-{ES_VERSION}.zip"

    @property
    def kafka_dir(self) -> Path:
        return self.state / "kafka"

    @property
    def es_dir(self) -> Path:
        return self.state / "elasticsearch"

    @property
    def es_home(self) -> Path:
        return self.es_dir / f"elasticsearch-{ES_VERSION}"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "logs" / "server.log"

    @property
    def kafka_out(self) -> Path:
        return self.kafka_dir / "logs" / "kafka.out"

    @property
    def es_log(self) -> Path:
        return self.es_dir / "logs" / "sipscope.log"

    @property
    def es_out(self) -> Path:
        return self.es_dir / "logs" / "elasticsearch.out"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def es_pid(self) -> Path:
        return self.es_dir / "elasticsearch.pid"


def paths_for(settings: Settings) -> Paths:
    return Paths(state=Path(settings.stack.state_dir), cache=Path(settings.stack.cache_dir))


def _say(msg: str) -> None:
    print(f"sipscope stack: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- java and downloads


def java_major(java_home: Path | None) -> int | None:
    """Major version of the JDK at java_home (or of `java` on PATH), None when absent."""
    java = str(java_home / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    try:
        out = subprocess.run([java, "-XshowSettings:properties", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("java.specification.version"):
            try:
                return int(line.split("=", 1)[1].strip().split(".")[0])
            except ValueError:
                return None
    return None


def find_es_java(settings: Settings) -> Path:
    """A JDK >= 21 for Elasticsearch 9: the configured one, $JAVA_HOME, or the newest under /usr/lib/jvm."""
    candidates: list[Path] = []
    if settings.stack.es_java_home:
        candidates.append(Path(settings.stack.es_java_home))
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if (p / "bin" / "java").exists() and not p.is_symlink()), reverse=True)
    best: tuple[int, Path] | None = None
    for c in candidates:
        major = java_major(c)
        if major and major >= ES_MIN_JAVA and (best is None or major > best[0]):
            best = (major, c)
    if best is None:
        raise StackError(
            f"Elasticsearch {ES_VERSION} needs Java {ES_MIN_JAVA}+ and none was found "
            "(install a JDK 21+ under /usr/lib/jvm or set SIPSCOPE_STACK__ES_JAVA_HOME)"
        )
    return best[1]


def _kafka_java(settings: Settings) -> str:
    home = Path(settings.stack.java_home) if settings.stack.java_home else None
    major = java_major(home)
    if major is None:
        raise StackError("Java not found: Kafka needs Java 17+ (install default-jdk-headless or set SIPSCOPE_STACK__JAVA_HOME)")
    if major < KAFKA_MIN_JAVA:
        raise StackError(f"Kafka {KAFKA_VERSION} needs Java {KAFKA_MIN_JAVA}+, found Java {major}")
    return str(home / "bin" / "java") if home else shutil.which("java")  # type: ignore[return-value]


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven (mvn) not found: it resolves Kafka and Elasticsearch from Maven Central (apt-get install maven)")
    return mvn


def _jars_ok(libs: Path) -> bool:
    marker = libs / ".complete"
    if not marker.exists():
        return False
    for jar in libs.glob("*.jar"):
        try:
            with zipfile.ZipFile(jar) as z:
                if z.testzip() is not None:
                    return False
        except (zipfile.BadZipFile, OSError):
            return False
    return any(libs.glob("kafka_2.13-*.jar"))


def ensure_kafka_jars(paths: Paths) -> Path:
    libs = paths.kafka_jars
    if _jars_ok(libs):
        return libs
    if libs.exists():
        _say(f"Kafka jar cache at {libs} incomplete or corrupt: resolving again")
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    _say(f"resolving Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}")
    log = paths.cache / "mvn-kafka.log"
    cmd = [_mvn(), "-B", "-f", str(INFRA_STACK / "kafka-pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
           f"-Dkafka.version={KAFKA_VERSION}", f"-Dlog4j.version={LOG4J_VERSION}"]
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        shutil.rmtree(libs, ignore_errors=True)
        raise StackError(f"download of Kafka {KAFKA_VERSION} from Maven Central failed (read {log})")
    (libs / ".complete").write_text(KAFKA_VERSION)
    return libs


def ensure_es_zip(paths: Paths) -> Path:
    z = paths.es_zip
    if z.exists():
        try:
            with zipfile.ZipFile(z) as zf:
                if zf.testzip() is None:
                    return z
        except zipfile.BadZipFile:
            pass
        _say(f"cached {z.name} is corrupt: downloading again")
        z.unlink()
    paths.cache.mkdir(parents=True, exist_ok=True)
    _say(f"resolving Elasticsearch {ES_VERSION} ({ES_ARTIFACT}) from Maven Central")
    log = paths.cache / "mvn-elasticsearch.log"
    tmp = paths.cache / "es-download"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [_mvn(), "-B", "dependency:copy", f"-Dartifact={ES_ARTIFACT}", f"-DoutputDirectory={tmp}"]
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=paths.cache).returncode
    got = list(tmp.glob("elasticsearch-*.zip"))
    if rc != 0 or not got:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError(f"download of Elasticsearch {ES_VERSION} from Maven Central failed (read {log})")
    got[0].replace(z)
    shutil.rmtree(tmp, ignore_errors=True)
    return z


def _tree_digest(root: Path) -> str:
    """A digest of the files under root (names and contents): the plugin's cache key besides ES_VERSION."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and "target" not in p.relative_to(root).parts):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def ensure_es_root_plugin(paths: Paths, es_java_home: Path) -> Path:
    """The sipscope-root Elasticsearch plugin (GET / and HEAD /) as an installable directory.

    Built once with Maven from ``infra/stack/es-root-plugin`` against ``org.elasticsearch:elasticsearch``
    (Maven Central) on the Elasticsearch JDK, into ``paths.cache / es-root-plugin-<ES_VERSION>``; rebuilt
    only when that cache lacks its marker or the plugin's sources changed.
    """
    out = paths.cache / f"es-root-plugin-{ES_VERSION}"
    plugin = out / ES_ROOT_PLUGIN
    marker = out / ".complete"
    digest = f"{ES_VERSION} {_tree_digest(ES_ROOT_PLUGIN_SRC)}"
    try:
        if marker.read_text() == digest and (plugin / "plugin-descriptor.properties").exists() and any(plugin.glob("*.jar")):
            return plugin
    except OSError:
        pass
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _say(f"building the Elasticsearch root-endpoint plugin ({ES_ROOT_PLUGIN}) with Maven into {out}")
    log = paths.cache / "mvn-es-root-plugin.log"
    cmd = [_mvn(), "-B", "-q", "-f", str(ES_ROOT_PLUGIN_SRC / "pom.xml"), "package",
           f"-Delasticsearch.version={ES_VERSION}", f"-Dsipscope.build.dir={out}"]
    env = dict(os.environ, JAVA_HOME=str(es_java_home))
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=paths.cache).returncode
    if rc != 0 or not (plugin / "plugin-descriptor.properties").exists() or not any(plugin.glob("*.jar")):
        shutil.rmtree(out, ignore_errors=True)
        raise StackError(f"build of the Elasticsearch plugin {ES_ROOT_PLUGIN} (GET /) with Maven failed (read {log})")
    marker.write_text(digest)
    return plugin


# ---------------------------------------------------------------- processes


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _our_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in pidfile if that process is alive and is really ours (its command line has marker)."""
    pid = _read_pid(pidfile)
    if pid and marker in _cmdline(pid):
        return pid
    return None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(l.strip() for l in lines[-n:])


# ---------------------------------------------------------------- health


def kafka_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not _port_open(host, int(port)):
        return False
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0})
        md = admin.list_topics(timeout=timeout)
        return bool(md.brokers)
    except Exception:  # noqa: BLE001 - any client error means "not answering yet"
        return False


def es_health(url: str, timeout: float = 3.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health?timeout=1s", timeout=timeout) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


# ---------------------------------------------------------------- kafka


def _render(template: Path, dest: Path, values: dict[str, str]) -> None:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", v)
    dest.write_text(text)


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them: 16 random bytes, URL-safe base64 without padding, never
    starting with ``-`` (Kafka's ``Uuid.randomUuid`` redraws those: the storage tool would read it as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def start_kafka(settings: Settings, paths: Paths) -> None:
    st = settings.stack
    bootstrap = f"{st.kafka_host}:{st.kafka_port}"
    if _our_pid(paths.kafka_pid, "kafka.Kafka"):
        if _wait(lambda: kafka_answers(bootstrap), 60):
            _say(f"Kafka already running on {bootstrap}")
            return
        raise StackError(f"Kafka process is running but does not answer on {bootstrap} (read {paths.kafka_log})")
    paths.kafka_pid.unlink(missing_ok=True)
    for port in (st.kafka_port, st.kafka_controller_port):
        if _port_open(st.kafka_host, port):
            raise StackError(f"port {st.kafka_host}:{port} is already in use by a process sipscope did not start (stop it or set SIPSCOPE_STACK__KAFKA_PORT)")
    java = _kafka_java(settings)
    libs = ensure_kafka_jars(paths)
    data = paths.kafka_dir / "data"
    logs = paths.kafka_dir / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    props = paths.kafka_dir / "server.properties"
    _render(INFRA_STACK / "server.properties.in", props, {
        "KAFKA_HOST": st.kafka_host, "KAFKA_PORT": str(st.kafka_port),
        "KAFKA_CONTROLLER_PORT": str(st.kafka_controller_port), "KAFKA_DATA": str(data),
    })
    cp = f"{libs}/*"
    jvm = [java, f"-Xms{st.kafka_heap}", f"-Xmx{st.kafka_heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={INFRA_STACK / 'log4j2.xml'}", "-cp", cp]
    if not (data / "meta.properties").exists():
        cluster_id = new_cluster_id()
        fmt_log = logs / "format.log"
        for attempt in (1, 2):
            with open(fmt_log, "w") as fh:
                rc = subprocess.run(jvm + ["kafka.tools.StorageTool", "format", "--config", str(props), "--cluster-id", cluster_id, "--ignore-formatted"],
                                    stdout=fh, stderr=subprocess.STDOUT).returncode
            if rc == 0 or attempt == 2:
                break
            # an unformatted data dir holds only leftovers of an interrupted start: clear it and try once more
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True, exist_ok=True)
        if rc != 0:
            raise StackError(f"Kafka storage format failed (read {fmt_log}: {_tail(fmt_log, 2)})")
    _say(f"starting Kafka {KAFKA_VERSION} on {bootstrap} (log {paths.kafka_log})")
    with open(paths.kafka_out, "ab") as out:
        proc = subprocess.Popen(jvm + ["kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    paths.kafka_pid.write_text(str(proc.pid))
    ok = _wait(lambda: proc.poll() is None and kafka_answers(bootstrap), st.start_timeout)
    if not ok:
        died = proc.poll() is not None
        _stop_pid(proc.pid, 10)
        paths.kafka_pid.unlink(missing_ok=True)
        why = "exited" if died else f"did not answer within {st.start_timeout:.0f}s"
        raise StackError(f"Kafka {why} (read {paths.kafka_log} and {paths.kafka_out}: {_tail(paths.kafka_out, 2) or _tail(paths.kafka_log, 2)})")


# ---------------------------------------------------------------- elasticsearch


def _ensure_es_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    rc = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                        capture_output=True, text=True)
    if rc.returncode != 0:
        raise StackError(f"cannot create the unprivileged user {name!r} for Elasticsearch: {rc.stderr.strip()}")
    return pwd.getpwnam(name)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _traversable(path: Path) -> None:
    """Let the unprivileged ES user reach path (o+x on its parents, as with any service directory)."""
    for parent in reversed(path.parents):
        try:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        except OSError:
            pass


def start_es(settings: Settings, paths: Paths) -> None:
    st = settings.stack
    url = f"http://{st.es_host}:{st.es_port}"
    if _our_pid(paths.es_pid, "org.elasticsearch"):
        if _wait(lambda: (es_health(url) or {}).get("status") in ("green", "yellow"), 120):
            _say(f"Elasticsearch already running on {url}")
            return
        raise StackError(f"Elasticsearch process is running but not healthy on {url} (read {paths.es_log})")
    paths.es_pid.unlink(missing_ok=True)
    for port in (st.es_port, st.es_transport_port):
        if _port_open(st.es_host, port):
            raise StackError(f"port {st.es_host}:{port} is already in use by a process sipscope did not start (stop it or set SIPSCOPE_STACK__ES_PORT)")
    java_home = find_es_java(settings)
    z = ensure_es_zip(paths)
    home = paths.es_home
    if not (home / "bin" / "elasticsearch").exists():
        shutil.rmtree(home, ignore_errors=True)
        paths.es_dir.mkdir(parents=True, exist_ok=True)
        _say(f"unpacking {z.name}")
        with zipfile.ZipFile(z) as zf:
            zf.extractall(paths.es_dir)
        for p in (home / "bin").iterdir():
            p.chmod(0o755)
    plugin = ensure_es_root_plugin(paths, java_home)
    installed = home / "plugins" / ES_ROOT_PLUGIN
    shutil.rmtree(installed, ignore_errors=True)
    shutil.copytree(plugin, installed)
    data, logs = paths.es_dir / "data", paths.es_dir / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    _render(INFRA_STACK / "elasticsearch.yml.in", home / "config" / "elasticsearch.yml", {
        "ES_DATA": str(data), "ES_LOGS": str(logs), "ES_HOST": st.es_host,
        "ES_PORT": str(st.es_port), "ES_TRANSPORT_PORT": str(st.es_transport_port),
    })
    env = dict(os.environ, ES_JAVA_HOME=str(java_home), ES_JAVA_OPTS=f"-Xms{st.es_heap} -Xmx{st.es_heap}")
    env.pop("JAVA_HOME", None)
    cmd = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(paths.es_pid)]
    if os.geteuid() == 0:
        user = _ensure_es_user(st.es_user)
        _traversable(paths.es_dir)
        _traversable(java_home / "bin" / "java")
        _chown_tree(paths.es_dir, user.pw_uid, user.pw_gid)
        cmd = ["runuser", "-u", st.es_user, "--", "env", f"ES_JAVA_HOME={java_home}",
               f"ES_JAVA_OPTS=-Xms{st.es_heap} -Xmx{st.es_heap}"] + cmd
    _say(f"starting Elasticsearch {ES_VERSION} on {url} with {java_home.name} (log {paths.es_log})")
    with open(paths.es_out, "ab") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=paths.es_dir, timeout=st.start_timeout).returncode
    if rc != 0:
        _cleanup_es(paths)
        raise StackError(f"Elasticsearch failed to start (exit {rc}; read {paths.es_out} and {paths.es_log}: {_tail(paths.es_out, 2)})")
    ok = _wait(lambda: _our_pid(paths.es_pid, "org.elasticsearch") is not None
               and (es_health(url) or {}).get("status") in ("green", "yellow"), st.start_timeout)
    if not ok:
        _cleanup_es(paths)
        raise StackError(f"Elasticsearch did not become healthy within {st.start_timeout:.0f}s (read {paths.es_log})")


def _cleanup_es(paths: Paths) -> None:
    pid = _our_pid(paths.es_pid, "org.elasticsearch")
    if pid:
        _stop_pid(pid, 20)
    paths.es_pid.unlink(missing_ok=True)


def _wait(pred, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


# ---------------------------------------------------------------- commands


@contextmanager
def _locked(paths: Paths):
    """One `up`/`down` at a time per state directory (two racing `up`s would start two nodes)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.state / "stack.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    paths = paths_for(settings)
    with _locked(paths):
        _up(settings, paths)


def _up(settings: Settings, paths: Paths) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    paths.cache.mkdir(parents=True, exist_ok=True)
    kafka_was_running = _our_pid(paths.kafka_pid, "kafka.Kafka") is not None
    start_kafka(settings, paths)
    try:
        start_es(settings, paths)
    except BaseException:
        # no half-started state: what this call started is stopped again
        if not kafka_was_running:
            pid = _our_pid(paths.kafka_pid, "kafka.Kafka")
            if pid:
                _stop_pid(pid)
            paths.kafka_pid.unlink(missing_ok=True)
        raise


def down(settings: Settings | None = None, quiet: bool = False) -> list[str]:
    settings = settings or get_settings()
    paths = paths_for(settings)
    with _locked(paths):
        return _down(paths, quiet)


def _down(paths: Paths, quiet: bool) -> list[str]:
    stopped = []
    for name, pidfile, marker in (("elasticsearch", paths.es_pid, "org.elasticsearch"), ("kafka", paths.kafka_pid, "kafka.Kafka")):
        pid = _our_pid(pidfile, marker)
        if pid:
            if not quiet:
                _say(f"stopping {name} (pid {pid})")
            _stop_pid(pid)
            stopped.append(name)
        pidfile.unlink(missing_ok=True)
    return stopped


def status(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    st = settings.stack
    paths = paths_for(settings)
    bootstrap = f"{st.kafka_host}:{st.kafka_port}"
    url = f"http://{st.es_host}:{st.es_port}"
    health = es_health(url)
    return {
        "kafka": {"version": KAFKA_VERSION, "address": bootstrap, "pid": _our_pid(paths.kafka_pid, "kafka.Kafka"),
                  "answering": kafka_answers(bootstrap), "log": str(paths.kafka_log)},
        "elasticsearch": {"version": ES_VERSION, "address": url, "pid": _our_pid(paths.es_pid, "org.elasticsearch"),
                          "answering": health is not None, "health": (health or {}).get("status"), "log": str(paths.es_log)},
        "state_dir": str(paths.state),
    }


def _cmd_stack(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            up()
            s = status()
            _say(f"up: Kafka on {s['kafka']['address']}, Elasticsearch on {s['elasticsearch']['address']} ({s['elasticsearch']['health']})")
        elif args.action == "down":
            stopped = down()
            _say("stopped " + (", ".join(stopped) if stopped else "nothing (no process of ours was running)"))
        else:
            s = status()
            if args.json:
                print(json.dumps(s, indent=2))
            else:
                for name in ("kafka", "elasticsearch"):
                    x = s[name]
                    state = "answering" if x["answering"] else "not answering"
                    extra = f" health={x['health']}" if name == "elasticsearch" and x["health"] else ""
                    print(f"{name:14} {x['version']:8} {x['address']:24} {state}{extra}  pid={x['pid'] or '-'}  log={x['log']}")
            return 0 if all(s[n]["answering"] for n in ("kafka", "elasticsearch")) else 3
    except StackError as exc:
        print(f"sipscope stack {args.action}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("stack", help="provision and run the local Kafka + Elasticsearch (loopback, no Docker)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=_cmd_stack)
