"""Each model names the code it models; those names must exist, and the z3 models of the
joins must agree with the real joins on random states."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.crdt import LWWRegister, PNCounter
from microstatedb.errors import DecodeError
from microstatedb.protocols import LeaseConfig
from proofs import MODELS, PROOFS, model_properties, model_refs


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_every_spin_model_names_existing_code(model: Any) -> None:
    refs = model_refs(model.path)
    assert refs
    for module, qualname in refs:
        assert callable(_resolve(module, qualname)) or isinstance(
            _resolve(module, qualname), property
        ), f"{model.file} names {module}:{qualname}"
    assert model_properties(model.path), f"{model.file} states no property"
    for macro in model.mutants.values():
        assert macro in model.path.read_text(), f"mutant macro {macro} not in {model.file}"


@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_every_z3_proof_names_existing_code(proof: Any) -> None:
    for ref in proof.models:
        module, _, qualname = ref.partition(":")
        assert _resolve(module, qualname) is not None


def test_a_model_without_code_names_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pml"
    bare.write_text("/* nothing named */\nactive proctype p() { skip }\n")
    with pytest.raises(DecodeError):
        model_refs(bare)
    bad = tmp_path / "bad.pml"
    bad.write_text("/* @models not-a-reference */\n")
    with pytest.raises(DecodeError):
        model_refs(bad)


@given(st.floats(0.001, 100.0), st.floats(0.0, 0.49))
def test_holder_duration_is_the_proved_formula(duration: float, drift: float) -> None:
    cfg = LeaseConfig(duration=duration, drift=drift)
    assert cfg.holder_duration == pytest.approx(duration * (1 - drift) / (1 + drift))
    # the property the z3 proof rests on, at the extreme rates
    assert cfg.holder_duration / (1 - drift) <= duration / (1 + drift) + 1e-9


counts = st.dictionaries(st.sampled_from("abc"), st.integers(0, 50), max_size=3)


@given(counts, counts, counts, counts)
def test_pncounter_join_is_the_proved_pointwise_max(
    p1: dict[str, int], p2: dict[str, int], n1: dict[str, int], n2: dict[str, int]
) -> None:
    x = PNCounter.from_state("x", [p1, n1, {}, {}])
    y = PNCounter.from_state("y", [p2, n2, {}, {}])
    x.merge(y)
    keys = set(p1) | set(p2)
    want = {k: max(p1.get(k, 0), p2.get(k, 0)) for k in keys}
    assert {k: v for k, v in x.state()[0].items() if v} == {k: v for k, v in want.items() if v}


stamps = st.one_of(st.none(), st.tuples(st.integers(0, 5), st.sampled_from("ab")))


@given(stamps, stamps, stamps, stamps)
def test_lww_join_is_the_proved_canonical_max(s1: Any, f1: Any, s2: Any, f2: Any) -> None:
    def state(s: Any, f: Any) -> list[Any]:
        if s is not None and f is not None and s <= f:
            s = None  # only canonical states exist
        return [
            None if s is None else list(s),
            None if s is None else "v",
            None if f is None else list(f),
        ]

    x = LWWRegister.from_state("x", state(s1, f1))
    y = LWWRegister.from_state("y", state(s2, f2))
    x.merge(y)
    floors = [f for f in (f1, f2) if f is not None]
    stamps_ = [s for s, f in ((s1, f1), (s2, f2)) if s is not None and (f is None or s > f)]
    floor = max(floors) if floors else None
    top = max(stamps_) if stamps_ else None
    if top is not None and floor is not None and top <= floor:
        top = None
    got = x.state()
    assert (None if got[0] is None else tuple(got[0])) == top
    assert (None if got[2] is None else tuple(got[2])) == floor
