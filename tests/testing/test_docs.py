"""The guide's order service runs, as written in docs/testing.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from microstatedb.testing import Cluster, Nemesis

pytest_plugins = ["microstatedb.testing.plugin", "pytester"]

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def guide_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(blocks()[1], str(GUIDE), "exec"), namespace)
    return namespace


def test_the_guide_has_its_two_code_blocks() -> None:
    assert blocks()[0].strip() == 'pytest_plugins = ["microstatedb.testing.plugin"]'
    test_body = blocks()[1].split("def test_orders_survive_a_partition")[1]
    assert len(test_body.strip().splitlines()) <= 21  # the test in about twenty lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_order_service_example_holds_its_invariants(seed: int) -> None:
    namespace = guide_namespace()
    cluster = Cluster(3, seed=seed)
    try:
        namespace["test_orders_survive_a_partition"](cluster, Nemesis(cluster))
        paid = [
            v for k, v in cluster["n000"].value().items() if k.startswith("order:") and v == "paid"
        ]
        assert 0 < len(paid) <= namespace["STOCK"]
        assert cluster.converged()
    finally:
        cluster.close()


def test_an_overselling_service_fails_the_guide_test() -> None:
    namespace = guide_namespace()
    sell_everything = namespace["place_order"]

    def oversell(store: Any, node: str, order: str, pay: Any) -> None:
        store.counter(f"sold:{node}").increment()  # no escrow: each side sells freely
        store.register(f"order:{order}").set("paid")

    namespace["test_orders_survive_a_partition"].__globals__["place_order"] = oversell
    cluster = Cluster(3, seed=1)
    try:
        with pytest.raises(AssertionError):
            namespace["test_orders_survive_a_partition"](cluster, Nemesis(cluster))
    finally:
        cluster.close()
        namespace["place_order"] = sell_everything


def test_the_guide_runs_under_pytest_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(blocks()[0])
    pytester.makepyfile(test_guide=blocks()[1])
    pytester.runpytest_inprocess("--strict-markers").assert_outcomes(passed=1)
