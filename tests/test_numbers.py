"""Phone-number normalisation: URI user parts -> E.164 digits under a numbering plan."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscope.numbers import NumberPlan, normalise, reverse_digits, search_forms
from sipscope.settings import NumberingSettings

AU = NumberPlan()


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("+61289707501", "61289707501"),
        ("0289707501", "61289707501"),  # national trunk prefix -> country code
        ("0061289707501", "61289707501"),  # international prefix stripped
        ("+44 20 7946 0958", "442079460958"),
        ("(02) 8970-7501", "61289707501"),
        ("02.8970.7501", "61289707501"),
        ("02/8970/7501", "61289707501"),
        ("+61289707501;npdi;rn=+61255550000", "61289707501"),
        ("0289707501;phone-context=+61", "61289707501"),
        ("%2B61289707501", "61289707501"),
        ("1001", "1001"),  # extension
        ("000", "000"),  # emergency short code: no country code after 0 / 00
        ("00", "00"),
        ("0", "0"),
        ("alice", None),
        ("anonymous", None),
        ("Anonymous", None),
        ("*98", None),
        ("+", None),
        ("", None),
        (None, None),
        ("user;par=u%40example.net", None),
        ("١٢٣", None),  # Arabic-Indic digits are not dialled digits
    ],
)
def test_normalise(user: str | None, expected: str | None) -> None:
    assert normalise(user, AU) == expected


def test_plan_from_settings() -> None:
    plan = NumberPlan.from_settings(NumberingSettings(country_code="44", trunk_prefix="0", international_prefix="00"))
    assert plan == NumberPlan("44", "0", "00")
    assert normalise("02079460958", plan) == "442079460958"
    assert NumberPlan.from_settings(NumberingSettings()) == AU


def test_longer_international_prefix() -> None:
    # Australia actually dials 0011 for international calls
    plan = NumberPlan(country_code="61", trunk_prefix="0", international_prefix="0011")
    assert normalise("0011442079460958", plan) == "442079460958"
    assert normalise("0289707501", plan) == "61289707501"


def test_no_trunk_prefix_plan() -> None:
    # NANP-like plan without a trunk prefix: national numbers stay as dialled
    plan = NumberPlan(country_code="1", trunk_prefix="", international_prefix="011")
    assert normalise("0114420794609", plan) == "4420794609"
    assert normalise("2125550123", plan) == "2125550123"


def test_search_forms() -> None:
    assert search_forms("02 8970 7501", AU) == ["61289707501", "0289707501"]
    assert search_forms("+61 2 8970 7501", AU) == ["61289707501", "+61289707501", "0289707501"]
    assert search_forms("+44 20 7946 0958", AU) == ["442079460958", "+442079460958"]
    assert search_forms(" alice ", AU) == ["alice"]
    assert search_forms("  ", AU) == []


def test_reverse_digits() -> None:
    assert reverse_digits("61289707501") == "10570798216"
    assert reverse_digits(None) is None


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_normalise_never_raises(user: str) -> None:
    out = normalise(user, AU)
    assert out is None or (out.isdigit() and out.isascii())


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["61", "44", "1", "353"]),
    st.from_regex(r"[1-9][0-9]{5,11}", fullmatch=True),
    st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/"]), max_size=4),
)
def test_e164_international_and_national_forms_agree(cc: str, nsn: str, seps: list[str]) -> None:
    plan = NumberPlan(country_code=cc)
    e164 = cc + nsn
    dressed = nsn[:2] + "".join(seps) + nsn[2:]
    assert normalise("+" + e164, plan) == e164
    assert normalise("00" + e164, plan) == e164
    assert normalise("0" + nsn, plan) == e164
    assert normalise("0" + dressed, plan) == e164
    assert normalise("+" + cc + dressed, plan) == e164
    assert search_forms("0" + dressed, plan)[0] == e164


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_search_forms_are_distinct_and_never_raise(query: str) -> None:
    forms = search_forms(query, AU)
    assert len(forms) == len(set(forms))
