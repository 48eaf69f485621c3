"""Peer authentication: tampered, unauthenticated, replayed and misdirected messages."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import packb, seal_envelope
from microstatedb.errors import AuthenticationError, ConfigurationError
from microstatedb.transport import MESSAGE_KIND, Authenticator

KEY = bytes(range(32))


def pair() -> tuple[Authenticator, Authenticator]:
    return Authenticator("a", KEY, boot=1), Authenticator("b", KEY, boot=1)


def test_round_trip() -> None:
    a, b = pair()
    assert b.open(a.seal("b", b"hello")) == ("a", b"hello")
    assert b.stats().accepted == 1
    assert b.stats().refused == 0


@given(st.integers(0, 200), st.integers(0, 7))
def test_any_flipped_bit_is_refused(index: int, bit: int) -> None:
    a, b = pair()
    data = bytearray(a.seal("b", b"payload"))
    data[index % len(data)] ^= 1 << bit
    with pytest.raises(AuthenticationError):
        b.open(bytes(data))
    assert b.stats().refused == 1
    assert b.stats().accepted == 0


def test_another_key_counts_as_tampered() -> None:
    a = Authenticator("a", bytes(32), boot=1)
    _, b = pair()
    with pytest.raises(AuthenticationError):
        b.open(a.seal("b", b"x"))
    assert b.stats().tampered == 1


def test_unauthenticated_messages_are_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    _, b = pair()
    unkeyed = seal_envelope(MESSAGE_KIND, packb(["a", "b", 1, 1, b"x"]), None)
    with caplog.at_level(logging.WARNING, logger="microstatedb.transport"):
        for data in (unkeyed, b"GET / HTTP/1.1", b""):
            with pytest.raises(AuthenticationError):
                b.open(data)
    assert b.stats().unauthenticated == 3
    assert "unauthenticated" in caplog.text


def test_replays_are_refused_but_reordering_passes() -> None:
    a, b = pair()
    msgs = [a.seal("b", bytes([i])) for i in range(10)]
    for i in (3, 1, 0, 2, 9, 5):
        assert b.open(msgs[i])[1] == bytes([i])
    for i in (3, 9, 0):
        with pytest.raises(AuthenticationError, match="replayed"):
            b.open(msgs[i])
    assert b.stats().replayed == 3


def test_messages_older_than_the_window_or_an_older_boot_are_refused() -> None:
    a, b = pair()
    old = a.seal("b", b"old")
    for _ in range(70):
        b.open(a.seal("b", b"new"))
    with pytest.raises(AuthenticationError):
        b.open(old)
    restarted = Authenticator("a", KEY, boot=2)
    assert b.open(restarted.seal("b", b"after restart"))[1] == b"after restart"
    with pytest.raises(AuthenticationError):
        b.open(a.seal("b", b"from the old process"))
    far = Authenticator("a", KEY, boot=2)
    far._counter = 10_000
    b.open(far.seal("b", b"jump"))  # a jump past the window resets it


def test_misdirected_and_malformed_authentic_messages() -> None:
    a, b = pair()
    with pytest.raises(AuthenticationError):
        b.open(a.seal("c", b"x"))
    bad = seal_envelope(MESSAGE_KIND, packb(["a", "b"]), KEY)
    with pytest.raises(AuthenticationError):
        b.open(bad)
    s = b.stats()
    assert (s.misdirected, s.tampered) == (1, 1)


@pytest.mark.parametrize(("key", "boot"), [(b"short", 1), (KEY, -1)])
def test_settings_are_checked(key: bytes, boot: int) -> None:
    with pytest.raises(ConfigurationError):
        Authenticator("a", key, boot=boot)
