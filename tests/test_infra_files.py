"""infra/docker-compose.yml stays valid YAML and uses only SIPSCOPE_* names that the settings know."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from sipscope.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _known(path: list[str], model: type[BaseModel]) -> bool:
    fields = {k.lower(): v for k, v in model.model_fields.items()}
    head = path[0].lower()
    if head not in fields:
        return False
    if len(path) == 1:
        return True
    ann = fields[head].annotation
    return isinstance(ann, type) and issubclass(ann, BaseModel) and _known(path[1:], ann)


def test_compose_is_valid_and_uses_known_settings():
    doc = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    assert {"kafka", "elasticsearch", "kibana"} <= set(doc["services"])
    envs: dict[str, str] = {}
    for svc in doc["services"].values():
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            envs.update({k: v for k, v in env.items() if k.startswith("SIPSCOPE_")})
    assert envs, "the sipscope services are configured through SIPSCOPE_* variables"
    for name in envs:
        assert _known(name.removeprefix("SIPSCOPE_").split("__"), Settings), f"{name} is not a setting"


def test_settings_reader_accepts_the_compose_values(monkeypatch):
    doc = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    env = doc["services"]["hep-collector"]["environment"]
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    s = Settings()
    assert s.kafka.bootstrap == "kafka:9092"
    assert s.elasticsearch.retention_days == 5


def test_unknown_name_is_caught():
    assert not _known(["KAFKA", "BOOTSTRAPP"], Settings)
    assert _known(["STACK", "ES_HEAP"], Settings)
