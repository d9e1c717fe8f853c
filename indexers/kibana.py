"""Kibana saved objects under ``infra/kibana/*.ndjson``: load, check, import.

The files (imported together, in name order, so references across files resolve):

* ``01-data-views.ndjson`` - a data view per index family (``sip-messages-*`` ...), time field set;
* ``02-trace-by-number.ndjson`` - saved search "Trace by number" with the trace columns;
* ``03-carrier-kpis.ndjson`` - Lens charts and the "Carrier KPIs" dashboard (ASR, NER, PDD, CPS,
  concurrent calls per trunk, from ``sip-stats-*``);
* ``04-capacity.ndjson`` - "Capacity": busy hour, peak concurrent calls, Erlangs;
* ``05-alerts.ndjson`` - "Alerts": trend, top subjects, list.

No Kibana runs here, so :func:`validate` checks what Kibana would trip on: every line is a JSON object
with ``type``/``id``/``attributes``/``references``, every reference resolves inside the set, every
Lens layer, saved-search index and dashboard panel has its reference, and every field used (time
fields, columns, sort, Lens source fields, fields named in KQL queries) exists in the index mappings
with a type that fits its use. The field types come from a callable, so the same check runs against the
template files (unit test) and against ``_field_caps`` of real indices (stack test).

:func:`import_objects` posts the set to ``POST /api/saved_objects/_import`` (multipart field ``file``,
header ``kbn-xsrf``), rewriting data-view titles with the index prefix.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from indexers.errors import KibanaImportError, KibanaObjectsInvalid
from indexers.families import FAMILIES
from indexers.layout import load_template
from sipscope.settings import PROJECT_ROOT

KIBANA_DIR = PROJECT_ROOT / "infra" / "kibana"

FieldTypes = Callable[[str], dict[str, tuple[str, bool]]]
"""Data-view title (``sip-stats-*``) -> {field: (Elasticsearch type, aggregatable)}."""

_NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
_KIND = {"number": _NUMERIC, "date": {"date", "date_nanos"}, "string": {"keyword"}, "ip": {"ip"},
         "boolean": {"boolean"}}
_KQL_FIELD = re.compile(r"(?:^|[\s(])(?:not\s+)?([A-Za-z_][\w.]*)\s*:")


def files(directory: Path = KIBANA_DIR) -> list[Path]:
    return sorted(directory.glob("*.ndjson"))


def load(directory: Path = KIBANA_DIR) -> list[dict[str, Any]]:
    """Every object of every file; raises :class:`KibanaObjectsInvalid` for a line that does not parse."""
    objs, problems = [], []
    for path in files(directory):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                problems.append(f"{path.name}:{n}: not JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{path.name}:{n}: not a JSON object")
                continue
            obj["_where"] = f"{path.name}:{n}"
            objs.append(obj)
    if problems:
        raise KibanaObjectsInvalid(problems)
    return objs


def render(objs: list[dict[str, Any]], index_prefix: str = "") -> bytes:
    """The NDJSON to import: data-view titles prefixed like the indices."""
    out = []
    for obj in objs:
        obj = {k: v for k, v in obj.items() if k != "_where"}
        if obj.get("type") == "index-pattern" and index_prefix:
            obj = json.loads(json.dumps(obj))
            obj["attributes"]["title"] = index_prefix + obj["attributes"]["title"]
        out.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


# ---------------------------------------------------------------- field types


def template_field_types(title: str) -> dict[str, tuple[str, bool]]:
    """Field types a data view would see, from the template file of its family (no cluster needed)."""
    for fam in FAMILIES.values():
        if title == f"{fam.base}-*":
            return _flatten(load_template(fam)["template"]["mappings"]["properties"])
    return {}


def _flatten(props: dict, path: str = "") -> dict[str, tuple[str, bool]]:
    out: dict[str, tuple[str, bool]] = {}
    for name, spec in props.items():
        full = f"{path}{name}"
        if "properties" in spec:
            out.update(_flatten(spec["properties"], full + "."))
            continue
        t = spec.get("type", "object")
        out[full] = (t, t not in ("text", "object"))
        for sub, sspec in spec.get("fields", {}).items():
            st = sspec.get("type", "object")
            out[f"{full}.{sub}"] = (st, st not in ("text", "object"))
    return out


def caps_field_types(es: Elasticsearch, index_prefix: str = "") -> FieldTypes:
    """Field types from ``_field_caps`` of the real indices behind each data view."""

    def types(title: str) -> dict[str, tuple[str, bool]]:
        resp = es.field_caps(index=index_prefix + title, fields="*", ignore_unavailable=True, allow_no_indices=True)
        out = {}
        for name, by_type in resp["fields"].items():
            real = {t: c for t, c in by_type.items() if not c.get("metadata_field")}
            if len(real) == 1:
                (t, c), = real.items()
                out[name] = (t, bool(c.get("aggregatable")))
            elif real:
                out[name] = ("conflict:" + "|".join(sorted(real)), False)
        return out

    return types


# ---------------------------------------------------------------- validation


def validate(objs: list[dict[str, Any]], field_types: FieldTypes = template_field_types) -> list[str]:
    """Every problem found (empty list = valid)."""
    problems: list[str] = []
    by_key = {}
    for o in objs:
        where = o.get("_where", o.get("id"))
        missing = [k for k in ("type", "id", "attributes", "references") if k not in o]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        key = (o["type"], o["id"])
        if key in by_key:
            problems.append(f"{where}: duplicate {o['type']} id {o['id']}")
        by_key[key] = o
    views = {o["id"]: o for o in objs if o.get("type") == "index-pattern"}
    cache: dict[str, dict] = {}

    def fields_of(view_id: str) -> dict[str, tuple[str, bool]]:
        title = views[view_id]["attributes"]["title"]
        if title not in cache:
            cache[title] = field_types(title)
        return cache[title]

    for o in by_key.values():
        where = f"{o.get('_where', '')} {o['type']} {o['id']}"
        refs = {}
        for r in o["references"]:
            if (r.get("type"), r.get("id")) not in by_key:
                problems.append(f"{where}: reference {r.get('name')} -> {r.get('type')} {r.get('id')} does not resolve")
            refs[r.get("name")] = r
        check = _CHECKS.get(o["type"])
        if check:
            problems += [f"{where}: {p}" for p in check(o, refs, views, fields_of)]
    return problems


def _use(fields: dict, name: str, kind: str | None, what: str, aggregatable: bool = True) -> list[str]:
    if name == "___records___":
        return []
    if name not in fields:
        return [f"{what} uses field {name!r}, absent from the index mappings"]
    t, agg = fields[name]
    if kind and t not in _KIND.get(kind, {kind}):
        return [f"{what} uses {name!r} as {kind} but it is mapped as {t}"]
    if aggregatable and not agg:
        return [f"{what} needs {name!r} aggregatable (mapped as {t})"]
    return []


def _kql(fields: dict, query: Any, what: str) -> list[str]:
    if not isinstance(query, dict) or query.get("language") != "kuery":
        return []
    return [p for f in _KQL_FIELD.findall(query.get("query", "")) for p in _use(fields, f, None, what, False)]


def _check_view(o, refs, views, fields_of) -> list[str]:
    tf = o["attributes"].get("timeFieldName")
    fields = fields_of(o["id"])
    if not fields:
        return [f"no index matches {o['attributes'].get('title')!r}"]
    return _use(fields, tf, "date", "time field") if tf else ["no time field set"]


def _view_of(refs: dict, name: str, views: dict) -> tuple[str | None, list[str]]:
    r = refs.get(name)
    if r is None:
        return None, [f"no reference named {name!r}"]
    if r.get("type") != "index-pattern" or r.get("id") not in views:
        return None, [f"reference {name!r} is not one of the data views"]
    return r["id"], []


def _check_search(o, refs, views, fields_of) -> list[str]:
    attrs = o["attributes"]
    try:
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
    except (KeyError, ValueError) as exc:
        return [f"searchSourceJSON unreadable ({exc})"]
    view, out = _view_of(refs, source.get("indexRefName", ""), views)
    if view is None:
        return out
    fields = fields_of(view)
    for c in attrs.get("columns", []):
        out += _use(fields, c, None, "column", aggregatable=False)
    for s in attrs.get("sort", []):
        out += _use(fields, s[0], None, "sort")
    return out + _kql(fields, source.get("query"), "query")


def _check_lens(o, refs, views, fields_of) -> list[str]:
    state = o["attributes"].get("state", {})
    layers = state.get("datasourceStates", {}).get("formBased", {}).get("layers", {})
    if not layers:
        return ["no formBased layer"]
    out: list[str] = []
    all_cols: set[str] = set()
    for lid, layer in layers.items():
        view, errs = _view_of(refs, f"indexpattern-datasource-layer-{lid}", views)
        out += errs
        cols = layer.get("columns", {})
        all_cols |= set(cols)
        if set(layer.get("columnOrder", [])) != set(cols):
            out.append(f"layer {lid}: columnOrder does not list exactly its columns")
        if view is None:
            continue
        fields = fields_of(view)
        for cid, col in cols.items():
            what = f"column {cid} ({col.get('operationType')})"
            for ref in col.get("references", []):
                if ref not in cols:
                    out.append(f"{what} references missing column {ref}")
            if "sourceField" in col:
                out += _use(fields, col["sourceField"], col.get("dataType"), what)
            agg = col.get("params", {}).get("orderAgg")
            if agg:
                out += _use(fields, agg["sourceField"], agg.get("dataType"), f"{what} rank-by")
            order = col.get("params", {}).get("orderBy", {})
            if order.get("type") == "column" and order.get("columnId") not in cols:
                out.append(f"{what} ranks by missing column {order.get('columnId')}")
        out += _kql(fields, state.get("query"), "query")
    vis = state.get("visualization", {})
    for acc in _accessors(vis):
        if acc not in all_cols:
            out.append(f"visualization uses missing column {acc}")
    return out


def _accessors(vis: dict) -> list[str]:
    found = []
    for layer in vis.get("layers", [vis]):
        for k in ("xAccessor", "splitAccessor", "metricAccessor"):
            if layer.get(k):
                found.append(layer[k])
        found += layer.get("accessors", [])
        found += [c["columnId"] for c in layer.get("columns", []) if isinstance(c, dict) and "columnId" in c]
    return found


def _check_dashboard(o, refs, views, fields_of) -> list[str]:
    try:
        panels = json.loads(o["attributes"]["panelsJSON"])
    except (KeyError, ValueError) as exc:
        return [f"panelsJSON unreadable ({exc})"]
    out = []
    for p in panels:
        name = f"{p.get('panelIndex')}:{p.get('panelRefName')}"
        r = refs.get(name)
        if r is None:
            out.append(f"panel {p.get('panelIndex')} has no reference named {name!r}")
        elif r.get("type") != p.get("type"):
            out.append(f"panel {p.get('panelIndex')} is a {p.get('type')} but references a {r.get('type')}")
    return out


_CHECKS = {"index-pattern": _check_view, "search": _check_search, "lens": _check_lens, "dashboard": _check_dashboard}


def check(directory: Path = KIBANA_DIR, field_types: FieldTypes = template_field_types) -> list[dict[str, Any]]:
    """Load and validate; raises :class:`KibanaObjectsInvalid` listing every problem."""
    objs = load(directory)
    problems = validate(objs, field_types)
    if problems:
        raise KibanaObjectsInvalid(problems)
    return objs


# ---------------------------------------------------------------- import


def import_objects(url: str, ndjson: bytes, *, space: str | None = None, overwrite: bool = True,
                   username: str | None = None, password: str | None = None, timeout: float = 60) -> dict:
    """``POST /api/saved_objects/_import``; returns Kibana's answer, raises :class:`KibanaImportError`
    when it is unreachable or reports errors."""
    boundary = f"sipscope-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sipscope.ndjson\"\r\n"
            f"Content-Type: application/ndjson\r\n\r\n").encode() + ndjson + f"\r\n--{boundary}--\r\n".encode()
    path = (f"/s/{space}" if space else "") + "/api/saved_objects/_import" + ("?overwrite=true" if overwrite else "")
    req = urllib.request.Request(url.rstrip("/") + path, data=body, method="POST", headers={
        "kbn-xsrf": "true", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise KibanaImportError(f"Kibana answered {exc.code}: {exc.read()[:500].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise KibanaImportError(f"cannot import into Kibana at {url}: {exc}") from None
    if not answer.get("success"):
        errors = [f"{e.get('type')} {e.get('id')}: {e.get('error', {}).get('type')}" for e in answer.get("errors", [])]
        raise KibanaImportError(f"Kibana imported {answer.get('successCount', 0)} object(s) and refused "
                                f"{len(errors)}: {'; '.join(errors[:10])}")
    return answer
