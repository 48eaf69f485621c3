"""Histories: the three file forms, their round trips, and pairing into operations."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify import History, HistoryEvent, Keyword, check_linearizable
from microstatedb.verify._edn import read_edn_forms, write_edn

FIXTURES = Path(__file__).parent.parent / "fixtures" / "porcupine"


def test_jsonl_parses_and_pairs() -> None:
    text = (
        '{"process": 0, "type": "invoke", "f": "cas", "key": "k", "value": [1, 2], "time": 10}\n'
        "\n"
        '{"process": 1, "type": "invoke", "f": "read", "key": "k", "value": null, "time": 11,'
        ' "session": "s1"}\n'
        '{"process": 0, "type": "ok", "f": "cas", "key": "k", "value": [1, 2], "time": 20,'
        ' "node": "n2"}\n'
    )
    h = History.parse(text)
    assert len(h) == 3
    assert h.lines == (1, 3, 4)
    assert h[0].value == (1, 2)  # lists become tuples: hashable states
    ops = h.operations()
    assert [(op.f, op.status, op.call, op.ret) for op in ops] == [
        ("cas", "ok", 10, 20),
        ("read", "info", 11, None),  # never completed: may take effect any time, or never
    ]
    assert ops[0].node == "n2"
    assert ops[1].session == "s1"
    assert ops[1].line == 3


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"type": "invoke", "f": "read", "time": 1}', "'process'"),
        ('{"process": true, "type": "invoke", "f": "read", "time": 1}', "'process'"),
        ('{"process": 1, "type": "begin", "f": "read", "time": 1}', "'type'"),
        ('{"process": 1, "type": "invoke", "f": "", "time": 1}', "'f'"),
        ('{"process": 1, "type": "invoke", "f": "read", "time": 1.5}', "'time'"),
        ('{"process": 1, "type": "invoke", "f": "read", "time": 1, "session": 3}', "'session'"),
        ('{"process": 1, "type": "invoke", "f": "read", "time": 1, "node": 3}', "'node'"),
    ],
)
def test_jsonl_errors_name_the_line(line: str, fragment: str) -> None:
    good = '{"process": 9, "type": "invoke", "f": "read", "key": null, "value": null, "time": 0}'
    with pytest.raises(DecodeError, match=r"line 2: .*") as info:
        History.parse(good + "\n" + line + "\n")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("events", "fragment"),
    [
        ([(0, "invoke", "read", 1), (0, "invoke", "read", 2)], "line 2: process 0 invokes again"),
        ([(0, "ok", "read", 1)], "line 1: process 0 completes an operation it never invoked"),
        ([(0, "invoke", "read", 1), (0, "ok", "write", 2)], "line 2: process 0 completes 'write'"),
        ([(0, "invoke", "read", 5), (0, "ok", "read", 2)], "line 2: completion time 2"),
    ],
)
def test_pairing_errors_name_the_line(
    events: list[tuple[int, str, str, int]], fragment: str
) -> None:
    h = History(HistoryEvent(p, t, f, None, None, time) for p, t, f, time in events)
    with pytest.raises(DecodeError) as info:
        h.operations()
    assert fragment in str(info.value)


def test_history_needs_one_line_per_event() -> None:
    with pytest.raises(ConfigurationError):
        History([HistoryEvent(0, "invoke", "read", None, None, 0)], lines=[1, 2])


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown history format"):
        History.parse("", "yaml")
    with pytest.raises(ConfigurationError, match="unknown history format"):
        History([]).dumps("yaml")


def test_jepsen_log_of_porcupine() -> None:
    h = History.load(FIXTURES / "jepsen" / "etcd_002.log")
    assert h[0] == HistoryEvent(4, "invoke", "read", None, None, 1)
    assert h[3].value == (2, 4)
    ops = h.operations()
    assert len(ops) == 77
    statuses = {op.status for op in ops}
    assert statuses == {"ok", "fail", "info"}
    # the space-padded files parse the same way
    padded = History.load(FIXTURES / "jepsen" / "etcd_100.log")
    assert len(padded.operations()) > 70


def test_jepsen_log_skips_other_lines_and_rejects_broken_ones() -> None:
    text = (
        "INFO jepsen.core - setting up\n"
        "some other output\n"
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
        "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]\n"
        "INFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n"
    )
    h = History.parse(text, "jepsen-log")
    assert [(e.process, e.type, e.value) for e in h] == [
        (3, "invoke", (1, 4)),
        (3, "info", Keyword("timed-out")),
    ]
    assert h.lines == (4, 5)
    with pytest.raises(DecodeError, match="line 1: not a Jepsen operation line"):
        History.parse("INFO  jepsen.util - what\n", "jepsen-log")
    with pytest.raises(DecodeError, match="line 1: process 'x1' is not a number"):
        History.parse("INFO  jepsen.util - x1\t:invoke\t:read\tnil\n", "jepsen-log")
    with pytest.raises(DecodeError, match="line 2: bad value"):
        History.parse("\nINFO  jepsen.util - 1\t:invoke\t:cas\t[1 4\n", "jepsen-log")
    with pytest.raises(DecodeError, match="line 1: expected one value"):
        History.parse("INFO  jepsen.util - 1\t:invoke\t:cas\t1 4\n", "jepsen-log")


def test_edn_of_porcupine_kv() -> None:
    h = History.load(FIXTURES / "kv" / "c01-ok.txt", "edn")
    assert h[0].f == "append"
    assert h[0].key == "0"
    assert isinstance(h[0].value, str)
    assert len(h.operations()) == 58


def test_edn_vector_history_with_times_and_nemesis() -> None:
    text = """; a Jepsen history as one vector
    [{:process 0, :type :invoke, :f :write, :value 3, :time 100, :index 0}
     {:process :nemesis, :type :info, :f :start, :value nil}
     {:process 0, :type :ok, :f :write, :value 3, :time 250}]"""
    h = History.parse(text, "edn")
    assert [(e.type, e.time) for e in h] == [("invoke", 100), ("ok", 250)]
    with pytest.raises(DecodeError, match="line 1: each history form must be an EDN map"):
        History.parse("[1 2]\n", "edn")
    with pytest.raises(DecodeError, match="line 1: each history form must be an EDN map"):
        History.parse("[]\n[]", "edn")


def test_edn_list_history_in_knossos_style() -> None:
    # a list of maps with comments, an :error field and a nemesis map spread over lines
    text = """(
 {:type :invoke, :f :write, :value 0, :process 0}
 {:type :ok, :f :write, :value 0, :process 0}
 ; a read and a write overlap; the read returns a value nobody wrote
 {:type :invoke, :f :read, :value nil, :process 1}
 {:process :nemesis,
  :type :info, :f :start, :value "cut off [:n1 :n2]"}
 {:type :invoke, :f :write, :value 4, :process 2}
 {:type :ok, :f :read, :value 3, :process 1}
 {:type :fail, :f :write, :value 4, :process 2, :error [:timeout nil]}
)"""
    h = History.parse(text, "edn")
    assert h.lines == (2, 3, 5, 8, 9, 10)
    assert [e.time for e in h] == [0, 1, 2, 4, 5, 6]  # positions, the nemesis included
    result = check_linearizable(h, "register")
    assert not result.ok
    assert result.explanation is not None
    assert [op.line for op in result.explanation.operations] == [5]


def test_jepsen_log_export_needs_keyless_history() -> None:
    h = History([HistoryEvent(0, "invoke", "read", "k", None, 1)])
    with pytest.raises(ConfigurationError, match="no keys"):
        h.dumps("jepsen-log")
    lost = History(
        [
            HistoryEvent(0, "invoke", "write", None, 1, 1),
            HistoryEvent(0, "info", "write", None, None, 2),
        ]
    )
    assert lost.dumps("jepsen-log").splitlines()[1].endswith(":info\t:write\t:timed-out")


def test_porcupine_log_round_trips_byte_for_byte() -> None:
    path = FIXTURES / "jepsen" / "etcd_000.log"
    text = path.read_text()
    assert History.parse(text, "jepsen-log").dumps("jepsen-log") == text


def test_load_and_dump_files(tmp_path: Path) -> None:
    h = History.load(FIXTURES / "kv" / "c01-bad.txt", "edn")
    for fmt, name in (("jsonl", "h.jsonl"), ("edn", "h.edn")):
        h.dump(tmp_path / name, fmt)
        assert History.load(tmp_path / name) == h
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe")
    with pytest.raises(DecodeError, match="not UTF-8"):
        History.load(tmp_path / "bad.jsonl")


def test_history_is_a_value() -> None:
    a = History([HistoryEvent(0, "invoke", "read", None, None, 1)])
    b = History([HistoryEvent(0, "invoke", "read", None, None, 1)])
    assert a == b
    assert hash(a) == hash(b)
    assert a != [*a]
    assert list(a) == [*b]
    assert repr(a) == "History(1 events)"


# -- EDN ---------------------------------------------------------------------------------------


def test_edn_reader_covers_the_syntax() -> None:
    forms = read_edn_forms(
        '{:a 1, :b -2.5e3, :c "q\\"\\n\\u0041", :d #{1 2}, :e (1 2), :f true, :g false,'
        ' :h nil, :i 7N, :j sym, :k \\c, :l #inst "2020"}'
    )
    (value, line), *_ = forms
    assert line == 1
    assert value == {
        Keyword("a"): 1,
        Keyword("b"): -2500.0,
        Keyword("c"): 'q"\nA',
        Keyword("d"): frozenset({1, 2}),
        Keyword("e"): [1, 2],
        Keyword("f"): True,
        Keyword("g"): False,
        Keyword("h"): None,
        Keyword("i"): 7,
        Keyword("j"): Keyword("sym"),
        Keyword("k"): "c",
        Keyword("l"): "2020",
    }
    assert repr(Keyword("ok")) == "Keyword('ok')"


@pytest.mark.parametrize(
    "text",
    ["[1 2", "[1 2)", ")", "{:a}", "{[1] 2}", "#{[1]}", "#inst", '"open', '"\\u00zz"'],
)
def test_edn_reader_rejects_broken_text(text: str) -> None:
    with pytest.raises(DecodeError):
        read_edn_forms(text)


def test_edn_writer() -> None:
    assert write_edn({Keyword("a"): [1, "x\\y\t"], Keyword("s"): frozenset()}) == (
        '{:a [1 "x\\\\y\\t"], :s #{}}'
    )
    assert write_edn((None, True, False, 1.5)) == "[nil true false 1.5]"
    with pytest.raises(DecodeError):
        write_edn(object())


# -- round trips --------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
)
values = st.one_of(scalars, st.tuples(scalars, scalars))
events = st.builds(
    HistoryEvent,
    process=st.integers(0, 5),
    type=st.sampled_from(["invoke", "ok", "fail", "info"]),
    f=st.sampled_from(["read", "write", "cas", "append"]),
    key=st.one_of(st.none(), st.text(max_size=3), st.integers(0, 9)),
    value=values,
    time=st.integers(0, 10**12),
    session=st.one_of(st.none(), st.text(max_size=4)),
    node=st.one_of(st.none(), st.sampled_from(["n1", "n2"])),
)


@given(st.lists(events, max_size=20), st.sampled_from(["jsonl", "edn"]))
def test_dumps_then_parse_is_identity(evs: list[HistoryEvent], fmt: str) -> None:
    h = History(evs)
    assert History.parse(h.dumps(fmt), fmt) == h


@given(st.lists(events.map(lambda e: e._replace(key=None, session=None, node=None)), max_size=20))
def test_jepsen_log_round_trip_keeps_everything_but_time(evs: list[HistoryEvent]) -> None:
    h = History([e._replace(value=None) if e.type == "info" else e for e in evs])
    back = History.parse(h.dumps("jepsen-log"), "jepsen-log")
    assert len(back) == len(h)
    for a, b in zip(h, back, strict=True):
        assert (a.process, a.type, a.f) == (b.process, b.type, b.f)
        assert b.value == (Keyword("timed-out") if a.type == "info" else a.value)
