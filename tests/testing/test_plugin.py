"""The pytest plugin: fixtures, the marker, checked histories and the replay report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from microstatedb.testing import CheckedRecorder, Cluster, Nemesis

pytest_plugins = ["microstatedb.testing.plugin", "pytester"]

HEADER = """
import pytest
from hypothesis import given, settings, strategies as st
from microstatedb.testing import Cluster, schedules
"""


@pytest.fixture(autouse=True)
def _plugin_in_pytester(request: pytest.FixtureRequest) -> None:
    # As an installed entry point would, load the plugin before any test module is imported.
    if "pytester" in request.fixturenames:
        pytester = request.getfixturevalue("pytester")
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        pytester.makeconftest('pytest_plugins = ["microstatedb.testing.plugin"]')


def test_cluster_fixture_replicates_and_settles(msdb_cluster: Cluster) -> None:
    a, b, c = msdb_cluster.names
    msdb_cluster.partition([a], [b, c])
    msdb_cluster.write(a, lambda s: s.counter("hits").increment(2), label="+2")
    msdb_cluster.write(b, lambda s: s.counter("hits").increment(3))
    msdb_cluster.run(2.0)
    assert msdb_cluster[a].counter("hits").value == 2
    assert msdb_cluster[c].counter("hits").value == 3
    msdb_cluster.settle()
    assert [s.counter("hits").value for s in msdb_cluster.stores()] == [5, 5, 5]
    assert msdb_cluster.schedule[0][1] == ("partition", ((a,), (b, c)))
    assert msdb_cluster.schedule[1][1] == ("write", a, "+2")


@pytest.mark.parametrize("msdb_options", [{"nodes": 5, "seed": 11}])
def test_options_sets_size_and_seed(msdb_cluster: Cluster, msdb_nemesis: Nemesis) -> None:
    assert len(msdb_cluster.names) == 5
    assert msdb_cluster.seed == 11
    msdb_nemesis.chaos(steps=8)
    msdb_cluster.settle()
    assert msdb_cluster.converged()
    assert msdb_cluster.sim.lost_writes() == 0


def test_default_seed_is_stable_per_test(msdb_cluster: Cluster) -> None:
    import zlib

    nodeid = "tests/testing/test_plugin.py::test_default_seed_is_stable_per_test"
    assert msdb_cluster.seed == zlib.crc32(nodeid.encode())


def test_manual_clock_moves_only_when_told(msdb_clock: object) -> None:
    from microstatedb.clock import ManualClock

    assert isinstance(msdb_clock, ManualClock)
    start = msdb_clock.monotonic()
    msdb_clock.advance(2.5)
    assert msdb_clock.monotonic() == start + 2.5


@pytest.mark.parametrize("msdb_options", [{"check": "linearizable"}])
def test_history_checked_after_the_body(
    msdb_cluster: Cluster, msdb_history: CheckedRecorder
) -> None:
    store = msdb_cluster[msdb_cluster.names[0]]
    reg = store.register("status")
    msdb_history.call(0, "write", "status", "open", reg.set, "open")
    assert msdb_history.call(1, "read", "status", None, lambda: reg.value) == "open"
    assert msdb_history.checker == "linearizable"


def test_stale_read_fails_the_named_checker() -> None:
    rec = CheckedRecorder("linearizable")
    rec.call(0, "write", "k", 1, lambda: None)
    rec.call(1, "read", "k", None, lambda: None)  # the write had completed: stale
    with pytest.raises(AssertionError, match="not linearizable"):
        rec.verify()
    for checker in ("sessions", "causal"):
        good = CheckedRecorder(checker)
        good.call("p", "write", "k", 1, lambda: None)
        good.call("p", "read", "k", None, lambda: 1)
        good.verify()
    stale = CheckedRecorder("sessions")
    stale.call("p", "write", "k", 1, lambda: None)
    stale.call("p", "read", "k", None, lambda: None)
    with pytest.raises(AssertionError, match="read-your-writes"):
        stale.verify()
    CheckedRecorder().verify()  # no checker named: nothing to check


def test_unknown_checker_is_a_configuration_error() -> None:
    from microstatedb.errors import ConfigurationError
    from microstatedb.testing import check_history

    with pytest.raises(ConfigurationError, match="unknown checker"):
        CheckedRecorder("serializable")
    with pytest.raises(ConfigurationError, match="unknown checker"):
        check_history(CheckedRecorder().history(), "serializable")


def test_failure_report_prints_seed_and_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.msdb(seed=42)
def test_split(msdb_cluster):
    a, b, c = msdb_cluster.names
    msdb_cluster.partition([a], [b, c])
    msdb_cluster.write(a, lambda s: s.counter("n").increment())
    msdb_cluster.run(1.0)
    assert msdb_cluster.converged()

def test_fine(msdb_cluster):
    assert msdb_cluster.names
"""
    )
    result = pytester.runpytest_inprocess("--strict-markers")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "msdb seed=42 nodes=3; schedule:" in out
    assert "('partition', (('n000',), ('n001', 'n002')))" in out
    assert "--msdb-seed=42" in out
    assert out.count("msdb seed=") == 1  # only the failing test reports


def test_seed_option_overrides_every_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.msdb(seed=42)
def test_seed(msdb_cluster):
    assert msdb_cluster.seed == 5
"""
    )
    pytester.runpytest_inprocess("--msdb-seed=5").assert_outcomes(passed=1)


def test_history_violation_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.msdb(check="linearizable")
def test_stale(msdb_history):
    msdb_history.call(0, "write", "k", 1, lambda: None)
    msdb_history.call(1, "read", "k", None, lambda: None)
"""
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    assert "the recorded history is not linearizable" in result.stdout.str()


def test_hypothesis_failure_reports_the_shrunk_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
NAMES = ["n000", "n001", "n002"]

@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(seed=st.integers(0, 3), schedule=schedules(NAMES, max_steps=6))
def test_no_partition_ever(seed, schedule):
    cluster = Cluster(3, seed=seed)
    try:
        cluster.apply(schedule)
        assert not any(step[0] == "partition" for _, step in cluster.schedule)
    finally:
        cluster.close()
"""
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    report = out[out.index("msdb seed=") :]
    # The shrunk schedule: the partition and the closing run, nothing else.
    assert "msdb seed=0 nodes=3" in report
    steps = [line for line in report.splitlines() if line.startswith("  t=")]
    assert len(steps) == 2, steps
    assert "'partition'" in steps[0]
    assert "('run', 0.5)" in steps[1]


def test_plugin_import_loads_no_hypothesis_and_no_extra_library_code() -> None:
    code = (
        "import sys, microstatedb; before = set(sys.modules)\n"
        "import microstatedb.testing.plugin, microstatedb.testing\n"
        "new = {m for m in set(sys.modules) - before if m.startswith(('microstatedb', 'hyp'))}\n"
        "assert new == {'microstatedb.testing', 'microstatedb.testing.plugin',"
        " 'microstatedb.testing._registry'}, new\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_pinned() -> None:
    import microstatedb.testing as testing

    assert testing.__all__ == [
        "CHECKERS",
        "ELEMENTS",
        "CRDTContract",
        "CheckedRecorder",
        "Cluster",
        "EventStoreContract",
        "Nemesis",
        "ReplicatedStoreMachine",
        "Step",
        "TransportContract",
        "apply_op",
        "check_history",
        "crdt_ops",
        "histories",
        "schedules",
    ]
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError):
        _ = testing.Nope
    import microstatedb.testing.contracts as contracts

    with pytest.raises(AttributeError):
        _ = contracts.Nope
    assert contracts.TransportContract is testing.TransportContract
