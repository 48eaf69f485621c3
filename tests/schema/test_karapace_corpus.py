"""Every case of the Karapace corpus (tests/fixtures/karapace) gets its verdict.

A case asks whether data written with ``writer`` can be read with ``reader``: through
``check_compatibility`` that is BACKWARD with new = reader and old = writer, and FORWARD with
the roles swapped. Where the corpus gives expected messages and locations, they must appear.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from microstatedb.schema import check_compatibility

FIXTURES = Path(__file__).parents[1] / "fixtures" / "karapace"
AVRO = json.loads((FIXTURES / "avro-compat.json").read_text())
JSON = json.loads((FIXTURES / "jsonschema-compat.json").read_text())

# The one fixture that Karapace parses with enum-symbol validation turned off.
LENIENT = {"test_schemaregistry_basic_backwards_compatibility#8"}


def test_corpus_is_complete() -> None:
    assert len(AVRO) == 204
    assert len(JSON) == 321
    assert sum(c["compatible"] for c in AVRO) == 133
    assert sum(c["compatible"] for c in JSON) == 181
    assert (FIXTURES / "LICENSE").read_text().startswith("\n")
    assert "Apache" in (FIXTURES / "LICENSE").read_text()
    assert "Karapace" in (FIXTURES / "CREDITS.md").read_text()


def _expect(case: dict[str, Any], texts: frozenset[str], locations: frozenset[str]) -> None:
    expected = case["expected_result"] or {}
    for key, got in (("messages", texts), ("locations", locations)):
        spec = expected.get(key)
        if spec is None:
            continue
        if spec["match"] == "exact":
            assert got == set(spec["values"]), (key, got)
        else:
            assert set(spec["values"]) <= got, (key, got)


@pytest.mark.parametrize("case", AVRO, ids=[c["id"] for c in AVRO])
def test_avro_case(case: dict[str, Any]) -> None:
    strict = case["id"] not in LENIENT
    backward = check_compatibility(case["reader"], [case["writer"]], "BACKWARD", strict=strict)
    assert backward.is_compatible is case["compatible"], backward.messages
    forward = check_compatibility(case["writer"], [case["reader"]], "FORWARD", strict=strict)
    assert forward.is_compatible is case["compatible"]
    assert all(m.direction == "forward" for m in forward.messages)
    _expect(case, backward.texts, backward.locations)
    if not case["compatible"]:
        assert all(m.message and m.location.startswith("/") for m in backward.messages)


@pytest.mark.parametrize("case", JSON, ids=[c["id"] for c in JSON])
def test_json_schema_case(case: dict[str, Any]) -> None:
    result = check_compatibility(case["reader"], [case["writer"]], "BACKWARD", "JSON")
    assert result.is_compatible is case["compatible"], result.messages
    if not case["compatible"]:
        assert all(m.message and m.location.startswith("/") for m in result.messages)


def test_text_and_parsed_forms_agree() -> None:
    for case in AVRO[:40]:
        strict = case["id"] not in LENIENT
        as_text = check_compatibility(
            json.dumps(case["reader"]), [json.dumps(case["writer"])], strict=strict
        )
        assert as_text.is_compatible is case["compatible"]
