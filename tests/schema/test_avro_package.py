"""Apache Avro's own compatibility tests (shipped in the PyPI ``avro`` package), run against us.

The test case is avro's ``TestCompatibility`` unchanged; only the checker it calls is replaced
by an adapter that converts avro's schema objects to JSON and asks ``microstatedb.schema``.
"""

from __future__ import annotations

import unittest
from typing import Any

import avro.test.test_compatibility as upstream
import pytest
from avro.compatibility import SchemaCompatibilityResult, SchemaCompatibilityType

from microstatedb.schema import parse_schema
from microstatedb.schema._compat import reader_writer


class _OurChecker:
    def get_compatibility(self, reader: Any, writer: Any) -> SchemaCompatibilityResult:
        found = reader_writer(parse_schema(reader.to_json()), parse_schema(writer.to_json()))
        if not found:
            return SchemaCompatibilityResult(SchemaCompatibilityType.compatible)
        return SchemaCompatibilityResult(
            SchemaCompatibilityType.incompatible,
            messages={i.message for i in found},
            locations={i.location for i in found},
        )


NAMES = sorted(unittest.defaultTestLoader.getTestCaseNames(upstream.TestCompatibility))


def test_upstream_suite_is_there() -> None:
    assert len(NAMES) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_upstream_case(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "ReaderWriterCompatibilityChecker", _OurChecker)
    outcome = unittest.TestResult()
    upstream.TestCompatibility(name).run(outcome)
    assert outcome.testsRun == 1
    assert not outcome.failures, outcome.failures
    assert not outcome.errors, outcome.errors
