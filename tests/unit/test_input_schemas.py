"""The input JSON Schemas (review.json, question.json) and the parser are one contract.

Hypothesis builds JSON objects field by field, from values on both sides of
every bound; whatever one side accepts the other must accept. What JSON
Schema cannot express is listed in ``EDGES``, each case pinned to what
the schema and the parser say, so a change on either side shows up here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import InvalidEvent
from streams.events import contract
from tests.schemas import is_valid

NOW = 1_767_400_000_000  # 2026-01-03T00:26:40Z, the time of processing
KAFKA_TS = 1_764_300_000_000
LIMITS = contract.Limits()
PARSERS = {"review": contract.parse_review, "question": contract.parse_question}
START_2000 = datetime(2000, 1, 1, tzinfo=UTC)


def parser_accepts(kind: str, event: dict[str, Any]) -> bool:
    try:
        PARSERS[kind](json.dumps(event).encode(), KAFKA_TS, LIMITS, NOW)
    except InvalidEvent:
        return False
    return True


def trimmed_text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Strings without surrounding whitespace: lengths then count the same on both sides."""
    return st.text(min_size=min_size, max_size=max_size).filter(lambda s: s == s.strip())


def around(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit - 1, limit + 1).map(lambda n: "x" * n)


def rfc3339(when: datetime, zone_minutes: int) -> str:
    zone = timedelta(minutes=zone_minutes)
    local = when.astimezone(UTC) + zone
    sign = "-" if zone_minutes < 0 else "+"
    hours, minutes = divmod(abs(zone_minutes), 60)
    suffix = "Z" if zone_minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}"
    return local.replace(tzinfo=None).isoformat(timespec="milliseconds") + suffix


# Event times from 1990 to the time of processing, never within a day of 2000-01-01
# (a zone offset moves those across the bound the schema checks on the local year).
INSTANTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2026, 1, 2), timezones=st.just(UTC)
).filter(lambda d: abs(d - START_2000) > timedelta(days=1))
NOW_S = NOW // 1000
OTHER = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
TS = st.one_of(
    st.builds(rfc3339, INSTANTS, st.integers(-14 * 60, 14 * 60)),
    st.integers(-(10**12), 946_684_800 + 10),
    st.integers(NOW_S - 10**6, NOW_S),
    st.integers(10**11, 10**11 + 5),  # below: seconds in the far future (EDGES)
    st.integers(946_684_800_000 - 5, NOW),
    st.sampled_from(["2025-01-02", "yesterday", "2026-01-02T03:04:05", ""]),
    OTHER,
)
IDS = st.one_of(trimmed_text(), around(256), OTHER, st.integers())
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": IDS,
    "product_id": IDS,
    "text": st.one_of(trimmed_text(), around(5000), OTHER, st.integers()),
    "rating": st.one_of(st.integers(-2, 8), OTHER, trimmed_text(max_size=2)),
    "user_id": st.one_of(trimmed_text(), around(256), OTHER),
    "category": st.one_of(trimmed_text(), around(128), OTHER),
    "lang": st.one_of(trimmed_text(), around(35), OTHER),
    "ts": TS,
    "extra": st.integers(),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid events with some fields missing or changed, so both verdicts occur."""
    event: dict[str, Any] = {"event_id": "e1", "product_id": "p1", "text": "fine"}
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        event[name] = draw(FIELDS[name])
    for name in draw(st.sets(st.sampled_from(sorted(event)), max_size=1)):
        del event[name]
    return event


@settings(max_examples=600, deadline=None)
@given(event=events(), kind=st.sampled_from(sorted(PARSERS)))
def test_the_schema_and_the_parser_accept_the_same_events(kind: str, event: dict[str, Any]) -> None:
    assert is_valid(kind, event) == parser_accepts(kind, event)


VALID = {"event_id": "e1", "product_id": "p1", "text": "fine"}

# (change to VALID, schema accepts, parser accepts): where the two agree at an edge, and
# every known difference, each with the reason JSON Schema cannot follow the parser.
EDGES: list[tuple[dict[str, Any], bool, bool]] = [
    ({"text": "  fine  "}, True, True),
    ({"text": " \t "}, False, False),
    ({"event_id": " "}, False, False),
    ({"user_id": ""}, True, True),  # an empty optional string is no value
    ({"ts": 946_684_800}, True, True),  # 2000-01-01 in seconds
    ({"ts": 946_684_800_000}, True, True),  # and in milliseconds
    ({"ts": 10**11}, False, False),  # milliseconds, so 1973
    ({"ts": "2026-01-02T03:04:05"}, False, False),  # no zone
    ({"ts": "1999-12-31T23:59:59Z"}, False, False),
    ({"ts": "2026-01-02t03:04:05z"}, True, False),  # RFC 3339 allows lower case; Python not
    # Lengths count after trimming: the schema sees the whitespace.
    ({"text": " " + "x" * 5000 + " "}, False, True),
    ({"event_id": "x" * 256 + " "}, False, True),
    # JSON has one number type: 1.7e9 is an integer to JSON Schema, the parser wants 1700000000.
    ({"ts": 1.7e9}, True, False),
    # The upper bound of ts is relative to the time of processing.
    ({"ts": "2026-01-05T00:00:00Z"}, True, False),
    ({"ts": 10**11 - 1}, True, False),  # seconds: the year 5138
    # The lower bound is an instant; the schema checks the year as written.
    ({"ts": "2000-01-01T05:00:00+08:00"}, True, False),
    # Leap seconds are RFC 3339 but no Python datetime.
    ({"ts": "2016-12-31T23:59:60Z"}, True, False),
    # ISO 8601 forms beyond RFC 3339 that Python reads.
    ({"ts": "20260102T030405Z"}, False, True),
    ({"ts": "2026-01-02T03:04:05+08"}, False, True),
    ({"ts": "2026-01-02 03:04:05Z"}, False, True),
]


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize(("change", "schema_ok", "parser_ok"), EDGES)
def test_edge_cases_and_every_known_difference(
    kind: str, change: dict[str, Any], schema_ok: bool, parser_ok: bool
) -> None:
    event = {**VALID, **change}
    assert (is_valid(kind, event), parser_accepts(kind, event)) == (schema_ok, parser_ok)


def test_a_rating_of_5_0_is_an_integer_to_json_schema_only() -> None:
    event = {**VALID, "rating": 5.0}
    assert is_valid("review", event)
    assert not parser_accepts("review", event)


def test_a_record_over_the_byte_limit_is_the_parsers_alone() -> None:
    event = {**VALID, "extra": "x" * LIMITS.max_input_bytes}
    assert is_valid("review", event)
    assert not parser_accepts("review", event)
