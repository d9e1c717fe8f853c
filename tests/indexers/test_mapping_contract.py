"""Contract between the wire records (sipscope/records.py) and the index layout (infra/elasticsearch/).

Every field of every record - recursively, through nested structs and lists - is mapped with a type that
fits it; nothing is mapped that no record or derived field produces; a fully populated document of each
family uses only mapped fields; the templates reference the retention policy, which deletes after 5 days.
"""

from __future__ import annotations

import typing

import msgspec
import msgspec.inspect as mi
import pytest

from indexers import documents, layout
from indexers.families import FAMILIES, Family

NUMERIC = {"integer", "long", "short", "byte"}
FLOATS = {"float", "double"}
IP_FIELDS = {"src_ip", "dst_ip", "media_ip"}


def _props(family: Family) -> dict:
    return layout.load_template(family)["template"]["mappings"]["properties"]


def _record_fields(cls) -> dict[str, mi.Type]:
    info = mi.type_info(cls)
    out = {info.tag_field: mi.IntType()} if info.tag_field else {}
    out.update({f.encode_name: f.type for f in info.fields})
    return out


def _unwrap(t: mi.Type) -> mi.Type:
    """Optional[X] -> X."""
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        assert len(rest) == 1, f"unexpected union {t}"
        return rest[0]
    return t


def _expected_types(name: str, t: mi.Type, family: Family, top: bool) -> set[str]:
    t = _unwrap(t)
    if top and name in family.time_fields:
        return {"date", "date_nanos"}
    if name in IP_FIELDS:
        return {"ip"}
    if isinstance(t, mi.BoolType):
        return {"boolean"}
    if isinstance(t, mi.IntType):
        return NUMERIC
    if isinstance(t, mi.FloatType):
        return FLOATS
    if isinstance(t, mi.StrType):
        return {"keyword", "text"}
    if isinstance(t, mi.ListType):
        return _expected_types(name, t.item_type, family, False)
    if isinstance(t, mi.DictType):
        return {"object"}
    raise AssertionError(f"no mapping rule for {name}: {t}")


def _check_struct(cls, props: dict, family: Family, path: str, top: bool) -> list[str]:
    problems = []
    fields = _record_fields(cls)
    for name, t in fields.items():
        full = f"{path}{name}"
        spec = props.get(name)
        if spec is None:
            problems.append(f"{family.base}: field {full} is not mapped")
            continue
        inner = _unwrap(t)
        if isinstance(inner, mi.ListType):
            inner = _unwrap(inner.item_type)
        if isinstance(inner, mi.StructType):
            if "properties" not in spec:
                problems.append(f"{family.base}: {full} is a struct but mapped as {spec.get('type')}")
            else:
                problems += _check_struct(inner.cls, spec["properties"], family, full + ".", False)
            continue
        got = spec.get("type", "object")
        want = _expected_types(name, t, family, top)
        if got not in want:
            problems.append(f"{family.base}: {full} mapped as {got}, expected one of {sorted(want)}")
    extra = set(props) - set(fields) - (set(family.rev_fields) if top else set())
    problems += [f"{family.base}: {path}{e} is mapped but no record field or derived field has that name" for e in sorted(extra)]
    return problems


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_every_record_field_is_mapped_with_a_fitting_type(family):
    assert _check_struct(family.record, _props(family), family, "", True) == []


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_number_fields_have_keyword_e164_and_reversed_forms(family):
    props = _props(family)
    for raw, e164 in family.numbers:
        assert props[raw]["type"] == "keyword"
        assert props[e164]["type"] == "keyword"
        assert props[f"{e164}_rev"]["type"] == "keyword"


def test_messages_raw_is_stored_not_indexed_and_ts_keeps_microseconds():
    """raw comes back with every hit (trace, UI) but is not analysed (the largest ES cost per message)."""
    props = _props(FAMILIES["messages"])
    assert props["raw"]["type"] == "text" and props["raw"]["index"] is False
    assert props["ts"]["type"] == "date_nanos"


# ---------------------------------------------------------------- a fully populated document


def _sample(t, name: str = "x"):
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        return t.cls(**{f.name: _sample(f.type, f.name) for f in mi.type_info(t.cls).fields})
    if isinstance(t, mi.BoolType):
        return False  # every bool field defaults to True or is required: False is always written
    if isinstance(t, mi.IntType):
        return 7
    if isinstance(t, mi.FloatType):
        return 1_764_000_000.25 if name.endswith("ts") or name.startswith("window") else 1.5
    if isinstance(t, mi.StrType):
        if name.endswith("_ip"):
            return "10.0.0.1"
        if name.endswith("e164"):
            return "61289707501"
        return f"{name}-value"
    if isinstance(t, mi.ListType):
        return [_sample(t.item_type, name)]
    if isinstance(t, mi.DictType):
        return {"200": 3}
    raise AssertionError(t)


def _paths(doc: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= _paths(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


def _mapped_paths(props: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, spec in props.items():
        if "properties" in spec:
            out |= _mapped_paths(spec["properties"], f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_a_fully_populated_document_uses_only_mapped_fields(family):
    rec = _sample(mi.type_info(family.record))
    day, doc = documents.to_document(rec, family)
    mapped = _mapped_paths(_props(family))
    dynamic = {p for p in _paths(doc) if p.startswith("responses.")}  # the one dynamic object (stats)
    assert _paths(doc) - dynamic <= mapped
    assert {f for f in family.rev_fields} <= set(doc)
    for f in family.time_fields:
        assert doc[f].endswith("Z") and doc[f].startswith("2025-11-24T")
    assert day == "2025.11.24"


def test_sample_covers_every_field():
    """Guard of the test above: the sample record really sets every field (none left at its default)."""
    for family in FAMILIES.values():
        rec = _sample(mi.type_info(family.record))
        doc = msgspec.to_builtins(rec)
        assert set(_record_fields(family.record)) <= set(doc), family.name


# ---------------------------------------------------------------- templates and policy


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_template_file_shape(family):
    body = layout.load_template(family)
    assert body["index_patterns"] == [f"{family.base}-*"]
    assert body["template"]["mappings"]["dynamic"] == "strict"
    lifecycle = body["template"]["settings"]["index"]["lifecycle"]
    assert lifecycle == {"name": layout.POLICY, "parse_origination_date": True}
    assert body["_meta"]["record"] == f"sipscope.records.{family.record.__name__}"


def test_rendered_templates_follow_prefix_and_ilm():
    fam = FAMILIES["calls"]
    with_ilm = layout.render_template(fam, "t1-", ilm=True)
    assert with_ilm["index_patterns"] == ["t1-sip-calls-*"]
    assert with_ilm["template"]["settings"]["index"]["lifecycle"]["name"] == "t1-sip-retention"
    without = layout.render_template(fam, "t1-", ilm=False)
    assert "lifecycle" not in without["template"]["settings"]["index"]
    assert layout.load_template(fam)["index_patterns"] == ["sip-calls-*"], "rendering never alters the file"


def test_ilm_policy_deletes_five_days_after_the_day():
    policy = layout.load_policy()["policy"]
    assert policy["phases"]["delete"]["min_age"] == "5d"
    assert policy["phases"]["delete"]["actions"] == {"delete": {}}
    assert layout.render_policy(7)["policy"]["phases"]["delete"]["min_age"] == "7d"


def test_families_match_the_topics_and_records():
    from sipscope import records, topics

    assert {f.topic for f in FAMILIES.values()} == set(topics.ALL) - {topics.REJECTED}
    for f in FAMILIES.values():
        assert isinstance(f.record, type) and issubclass(f.record, msgspec.Struct)
        assert f.time_field in f.time_fields
        hints = typing.get_type_hints(f.record)
        for raw, e164 in f.numbers:
            assert raw in hints and e164 in hints
    assert FAMILIES["messages"].record is records.SipMessage
