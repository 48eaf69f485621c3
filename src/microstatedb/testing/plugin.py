"""The pytest plugin: simulated clusters, a nemesis, a manual clock and checked histories.

Fixtures: ``msdb_cluster`` (a ``Cluster`` of 3 nodes), ``msdb_nemesis`` (a ``Nemesis`` on it),
``msdb_clock`` (a ``ManualClock``) and ``msdb_history`` (a ``CheckedRecorder``, checked when the
test body has passed). Configure them with a marker::

    @pytest.mark.msdb(nodes=5, seed=7, check="sessions")

(or the same keywords from an overridden ``msdb_options`` fixture).

A failing test that made a cluster reports the seed and the schedule that replay it (under
hypothesis, that of the last, shrunk, example). ``--msdb-seed`` overrides every seed.

This module imports only pytest at load time: it is loaded before coverage starts, and a test
that uses none of its fixtures pays for two dictionary look-ups.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from microstatedb.testing import _registry

if TYPE_CHECKING:
    from microstatedb.clock import ManualClock
    from microstatedb.testing._checked import CheckedRecorder
    from microstatedb.testing._cluster import Cluster, Nemesis


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("microstatedb")
    group.addoption(
        "--msdb-seed",
        type=int,
        default=None,
        help="seed every msdb_cluster with this value (to replay a reported failure)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "msdb(nodes=3, seed=None, check=None, **options): configure the microstatedb fixtures "
        "(cluster size, seed, and the checker the recorded history must pass)",
    )


@pytest.fixture
def msdb_options() -> dict[str, Any]:
    """Options for the fixtures, overridden by the ``msdb`` marker's; override this fixture
    (or parametrize it) where a marker cannot be registered in time."""
    return {}


def _options(request: pytest.FixtureRequest, base: dict[str, Any]) -> dict[str, Any]:
    opts = dict(base)
    marker = request.node.get_closest_marker("msdb")
    if marker is not None:
        opts.update(marker.kwargs)
    return opts


def _seed(request: pytest.FixtureRequest, opts: dict[str, Any]) -> int:
    given = request.config.getoption("--msdb-seed")
    if given is not None:
        return int(given)
    seed = opts.get("seed")
    # A stable default per test: the same test always replays the same run.
    return int(seed) if seed is not None else zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def msdb_clock() -> ManualClock:
    """A manual clock: time moves only when the test calls ``advance``."""
    from microstatedb.clock import ManualClock

    return ManualClock()


@pytest.fixture
def msdb_cluster(request: pytest.FixtureRequest, msdb_options: dict[str, Any]) -> Iterator[Cluster]:
    """A simulated cluster (3 nodes unless the ``msdb`` marker says ``nodes=``)."""
    from microstatedb.testing._cluster import Cluster

    opts = _options(request, msdb_options)
    cluster = Cluster(int(opts.get("nodes", 3)), seed=_seed(request, opts))
    yield cluster
    cluster.close()


@pytest.fixture
def msdb_nemesis(msdb_cluster: Cluster) -> Nemesis:
    """Faults for ``msdb_cluster``, from a random source seeded like the cluster."""
    from microstatedb.testing._cluster import Nemesis

    return Nemesis(msdb_cluster)


@pytest.fixture
def msdb_history(request: pytest.FixtureRequest, msdb_options: dict[str, Any]) -> CheckedRecorder:
    """A history recorder in virtual time, checked by the marker's ``check=`` when the test
    body passes (``linearizable``, ``sessions`` or ``causal``; extra marker options such as
    ``model=`` or ``level=`` go to the checker)."""
    from microstatedb.testing._checked import CheckedRecorder

    opts = _options(request, msdb_options)
    opts = {k: v for k, v in opts.items() if k not in ("nodes", "seed")}
    return CheckedRecorder(opts.pop("check", None), **opts)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _registry.last() is not None:
        _registry.forget()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    funcargs = getattr(item, "funcargs", None)
    if funcargs and "msdb_history" in funcargs:
        funcargs["msdb_history"].verify()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call":
        cluster = _registry.last()
        if cluster is not None:
            text = cluster.replay_text()
            text += (
                f"\nreplay: pytest '{item.nodeid}' --msdb-seed={cluster.seed} (the fixture's"
                " cluster; under hypothesis the seed is in the falsifying example)"
            )
            report.sections.append(("microstatedb", text))
    if call.when == "teardown" and _registry.last() is not None:
        _registry.forget()
    return report
