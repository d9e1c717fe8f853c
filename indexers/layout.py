"""The index layout declared under ``infra/elasticsearch/`` and its installation (``sipscope setup``).

Files:

* ``templates/sip-<family>.json`` - one composable index template per family: explicit mappings
  (``dynamic: strict``, so a field the template lacks is a visible rejection, never a silent guess),
  settings, and ``index.lifecycle`` naming the retention policy;
* ``ilm/sip-retention.json`` - the ILM policy: delete phase ``min_age: 5d``, measured from the day in the
  index name (``index.lifecycle.parse_origination_date``).

:func:`setup` installs them with the configured prefix (``<prefix>sip-messages-*``, policy
``<prefix>sip-retention``), idempotently (PUT overwrites), and applies additive mapping changes to the
daily indices that already exist. When the cluster has no ILM (``GET _ilm/status`` fails, as on the
minimal distribution used in tests), the ``index.lifecycle`` settings are left out - Elasticsearch would
refuse them - and retention is enforced by :mod:`indexers.retention` with the same rule.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from indexers.errors import SetupError
from indexers.families import FAMILIES, Family
from sipscope.settings import PROJECT_ROOT, Settings

ES_INFRA = PROJECT_ROOT / "infra" / "elasticsearch"
POLICY = "sip-retention"
"""Name of the ILM policy (before the prefix), as referenced by every template file."""


def template_path(family: Family) -> Path:
    return ES_INFRA / "templates" / f"{family.base}.json"


def policy_path() -> Path:
    return ES_INFRA / "ilm" / f"{POLICY}.json"


@cache
def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_template(family: Family) -> dict[str, Any]:
    """The template file of a family as declared (a fresh copy)."""
    return copy.deepcopy(_load(template_path(family)))


def load_policy() -> dict[str, Any]:
    return copy.deepcopy(_load(policy_path()))


def template_name(family: Family, prefix: str) -> str:
    return f"{prefix}{family.base}"


def policy_name(prefix: str) -> str:
    return f"{prefix}{POLICY}"


def render_template(family: Family, prefix: str, ilm: bool) -> dict[str, Any]:
    """The template body to PUT: patterns and policy name prefixed; lifecycle settings only with ILM."""
    body = load_template(family)
    body["index_patterns"] = [f"{prefix}{p}" for p in body["index_patterns"]]
    index_settings = body["template"]["settings"]["index"]
    if ilm:
        index_settings["lifecycle"]["name"] = policy_name(prefix)
    else:
        index_settings.pop("lifecycle", None)
    return body


def render_policy(retention_days: int) -> dict[str, Any]:
    """The ILM policy body with the configured retention (``delete.min_age = <days>d``)."""
    body = load_policy()
    body["policy"]["phases"]["delete"]["min_age"] = f"{retention_days}d"
    return body


def ilm_status(es: Elasticsearch) -> tuple[bool, str]:
    """(ILM available, why) from ``GET _ilm/status``."""
    try:
        mode = es.ilm.get_status().get("operation_mode", "?")
    except ApiError as exc:
        return False, f"GET _ilm/status answered {exc.status_code} ({_short(exc)})"
    return True, f"ILM operation mode {mode}"


@dataclass
class SetupReport:
    ilm: bool
    ilm_detail: str
    policy: str | None = None
    templates: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    """Index patterns whose existing daily indices received the template's mappings."""
    warnings: list[str] = field(default_factory=list)

    def lines(self, retention_days: int) -> list[str]:
        out = [f"index template {t} installed" for t in self.templates]
        if self.ilm:
            out.append(f"ILM policy {self.policy} installed (delete {retention_days} days after each index's day); {self.ilm_detail}")
        else:
            out.append(f"ILM is not available on this cluster ({self.ilm_detail}): daily indices are deleted "
                       f"{retention_days} days after their day by the indexer's retention sweeper "
                       "(scheduled inside `sipscope index`, or run `sipscope retention enforce`)")
        out += [f"mappings applied to existing indices {p}" for p in self.updated]
        out += [f"warning: {w}" for w in self.warnings]
        return out


def setup(es: Elasticsearch, settings: Settings, families: list[str] | None = None) -> SetupReport:
    """Install the policy (when ILM exists) and the templates; idempotent. Raises :class:`SetupError`."""
    prefix = settings.elasticsearch.index_prefix
    try:
        ilm, why = ilm_status(es)
        report = SetupReport(ilm=ilm, ilm_detail=why)
        if ilm:
            report.policy = policy_name(prefix)
            es.ilm.put_lifecycle(name=report.policy, policy=render_policy(settings.elasticsearch.retention_days)["policy"])
        for name in families or list(FAMILIES):
            family = FAMILIES[name]
            body = render_template(family, prefix, ilm)
            tname = template_name(family, prefix)
            es.indices.put_index_template(
                name=tname, index_patterns=body["index_patterns"], priority=body["priority"],
                template=body["template"], meta=body.get("_meta"),
            )
            report.templates.append(tname)
            _update_existing(es, family, prefix, body, report)
    except ApiError as exc:
        raise SetupError(f"Elasticsearch refused the index layout: {exc.status_code} {_short(exc)}") from exc
    except TransportError as exc:
        raise SetupError(f"Elasticsearch at {settings.elasticsearch.url} is unreachable: {exc}") from exc
    return report


def _update_existing(es: Elasticsearch, family: Family, prefix: str, body: dict, report: SetupReport) -> None:
    """Additive mapping changes reach today's index too (a new record field must not wait for midnight)."""
    pattern = family.pattern(prefix)
    mappings = body["template"]["mappings"]
    try:
        if not es.indices.exists(index=pattern, allow_no_indices=False):
            return
        es.indices.put_mapping(index=pattern, properties=mappings["properties"],
                               dynamic_templates=mappings.get("dynamic_templates"), allow_no_indices=True)
        report.updated.append(pattern)
    except ApiError as exc:
        report.warnings.append(f"existing indices {pattern} keep their mappings: {_short(exc)}")


def _short(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('reason')}"
    return str(err or exc.message)[:300]
