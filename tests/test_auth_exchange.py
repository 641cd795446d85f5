"""The pure parts of enhanced authentication, without a network: the exchange's state machine
(a table of every rule, then hypothesis over arbitrary server behaviour) and the K8S-SAT token
file watch in virtual time (reactivex's TestScheduler, real files, no sleeps)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.testing import TestScheduler

from rxmqtt.engine._auth_exchange import (
    Abort,
    Action,
    Answered,
    Authenticated,
    AuthReceived,
    Challenge,
    ConnackAccepted,
    ConnectSent,
    Event,
    Exchange,
    ExchangeError,
    GaveUp,
    LinkEnded,
    ReauthInterrupted,
    ReauthStarted,
    SendAuth,
    Stage,
    step,
)
from rxmqtt.settings import ConnectionSettings, K8sSatAuthenticator

M = "METHOD"

IDLE = Exchange(M)
CONNECTING = Exchange(M, Stage.CONNECTING)
AUTHENTICATED = Exchange(M, Stage.AUTHENTICATED)
REAUTHENTICATING = Exchange(M, Stage.REAUTHENTICATING)
NO_METHOD = Exchange(None, Stage.IDLE)


def _run(state: Exchange, *events: Event) -> tuple[Exchange, list[Action]]:
    actions: list[Action] = []
    for event in events:
        state, done = step(state, event)
        actions += done
    return state, actions


# (state, event) -> (stage after, actions); an Abort is matched by its reason code only.
RULES: dict[str, tuple[Exchange, Event, Stage, tuple[Action | int, ...]]] = {
    "connect with a method": (NO_METHOD, ConnectSent(M), Stage.CONNECTING, ()),
    "connect without one": (IDLE, ConnectSent(None), Stage.IDLE, ()),
    "challenge during connect": (
        CONNECTING,
        AuthReceived(0x18, M, b"c"),
        Stage.CONNECTING,
        (Challenge(b"c"),),
    ),
    "connack ends connect's exchange": (
        CONNECTING,
        ConnackAccepted(),
        Stage.AUTHENTICATED,
        (Authenticated(reauthentication=False, rounds=0),),
    ),
    "connack without enhanced auth": (NO_METHOD, ConnackAccepted(), Stage.IDLE, ()),
    "re-authenticate": (
        AUTHENTICATED,
        ReauthStarted(b"t"),
        Stage.REAUTHENTICATING,
        (SendAuth(0x19, M, b"t"),),
    ),
    "challenge during re-auth": (
        REAUTHENTICATING,
        AuthReceived(0x18, M, None),
        Stage.REAUTHENTICATING,
        (Challenge(None),),
    ),
    "success ends re-auth": (
        REAUTHENTICATING,
        AuthReceived(0x00),
        Stage.AUTHENTICATED,
        (Authenticated(reauthentication=True, rounds=0),),
    ),
    "success naming the method": (
        REAUTHENTICATING,
        AuthReceived(0x00, M),
        Stage.AUTHENTICATED,
        (Authenticated(reauthentication=True, rounds=0),),
    ),
    "link ends a re-auth": (REAUTHENTICATING, LinkEnded(), Stage.IDLE, (ReauthInterrupted(),)),
    "link ends quietly otherwise": (AUTHENTICATED, LinkEnded(), Stage.IDLE, ()),
    "give up on re-auth": (REAUTHENTICATING, GaveUp("slow"), Stage.REAUTHENTICATING, (0x80,)),
    "give up with nothing under way": (AUTHENTICATED, GaveUp("slow"), Stage.AUTHENTICATED, ()),
    # the server breaks the rules
    "AUTH without a method in CONNECT": (
        Exchange(None, Stage.IDLE),
        AuthReceived(0x18, M),
        Stage.IDLE,
        (0x82,),
    ),
    "another method": (CONNECTING, AuthReceived(0x18, "OTHER"), Stage.CONNECTING, (0x8C,)),
    "another method on success": (
        REAUTHENTICATING,
        AuthReceived(0x00, "OTHER"),
        Stage.REAUTHENTICATING,
        (0x8C,),
    ),
    "continue without a method": (CONNECTING, AuthReceived(0x18), Stage.CONNECTING, (0x82,)),
    "server's re-authenticate": (
        AUTHENTICATED,
        AuthReceived(0x19, M),
        Stage.AUTHENTICATED,
        (0x82,),
    ),
    "unknown reason code": (CONNECTING, AuthReceived(0x87, M), Stage.CONNECTING, (0x82,)),
    "success instead of CONNACK": (CONNECTING, AuthReceived(0x00, M), Stage.CONNECTING, (0x82,)),
    "success out of the blue": (
        AUTHENTICATED,
        AuthReceived(0x00, M),
        Stage.AUTHENTICATED,
        (0x82,),
    ),
    "challenge out of the blue": (
        AUTHENTICATED,
        AuthReceived(0x18, M),
        Stage.AUTHENTICATED,
        (0x82,),
    ),
}


@pytest.mark.parametrize("rule", RULES.values(), ids=list(RULES))
def test_each_rule(rule: tuple[Exchange, Event, Stage, tuple[Action | int, ...]]) -> None:
    state, event, stage, expected = rule
    after, actions = step(state, event)
    assert after.stage is stage
    shown = tuple(a.reason_code if isinstance(a, Abort) else a for a in actions)
    assert shown == expected


def test_rounds_are_counted_and_answers_go_out_as_continue() -> None:
    state, actions = _run(
        Exchange(),
        ConnectSent(M),
        AuthReceived(0x18, M, b"1"),
        Answered(b"r1"),
        AuthReceived(0x18, M, b"2"),
        Answered(None),
        ConnackAccepted(),
        ReauthStarted(b"t"),
        AuthReceived(0x18, M, b"3"),
        Answered(b"r3"),
        AuthReceived(0x00),
    )
    assert actions == [
        Challenge(b"1"),
        SendAuth(0x18, M, b"r1"),
        Challenge(b"2"),
        SendAuth(0x18, M, None),
        Authenticated(reauthentication=False, rounds=2),
        SendAuth(0x19, M, b"t"),
        Challenge(b"3"),
        SendAuth(0x18, M, b"r3"),
        Authenticated(reauthentication=True, rounds=1),
    ]
    assert state == Exchange(M, Stage.AUTHENTICATED, rounds=1)


def test_the_callers_mistakes_raise() -> None:
    """The driver's bugs, not the peer's: an answer nobody asked for, a re-authentication
    without an authenticated link."""
    with pytest.raises(ExchangeError, match="no challenge owed"):
        step(CONNECTING, Answered(b"x"))
    for state in (IDLE, CONNECTING, REAUTHENTICATING, NO_METHOD):
        with pytest.raises(ExchangeError, match="cannot re-authenticate"):
            step(state, ReauthStarted(b"x"))


_server_events = st.one_of(
    st.builds(
        AuthReceived,
        reason_code=st.sampled_from([0x00, 0x18, 0x19, 0x87, 0xFF]),
        method=st.sampled_from([None, M, "OTHER"]),
        data=st.none() | st.binary(max_size=4),
        reason_string=st.none() | st.just("why"),
    ),
    st.just(ConnackAccepted()),
    st.just(LinkEnded()),
    st.just(GaveUp("the client gives up")),
)


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from([None, M]),
    script=st.lists(st.tuples(_server_events, st.booleans()), max_size=25),
)
def test_whatever_the_server_does_the_machine_keeps_its_rules(
    method: str | None, script: list[tuple[Event, bool]]
) -> None:
    """Arbitrary server behaviour (and a client that re-authenticates whenever it may): no
    exception; an Abort carries one of the four codes and ends the conversation (the driver
    drops the link); every AUTH sent names the method; a re-authentication succeeds only after
    one was started; a challenge is always answered before the next event."""
    state, _ = step(Exchange(), ConnectSent(method))
    reauth_started = False
    for event, reauthenticate in script:
        state, actions = step(state, event)
        for action in actions:
            if isinstance(action, Challenge):
                state, sent = step(state, Answered(b"answer"))
                assert sent == (SendAuth(0x18, M, b"answer"),)
            elif isinstance(action, SendAuth):
                assert action.method == method
            elif isinstance(action, Authenticated) and action.reauthentication:
                assert reauth_started
                reauth_started = False
            elif isinstance(action, Abort):
                assert action.reason_code in (0x80, 0x82, 0x8C)
                assert action.reason
        if any(isinstance(a, Abort) for a in actions) or isinstance(event, LinkEnded):
            state, _ = step(state, LinkEnded())
            assert state.stage is Stage.IDLE
            assert not state.answering
            reauth_started = False
            state, _ = step(state, ConnectSent(method))  # the reconnect
        if reauthenticate and state.stage is Stage.AUTHENTICATED:
            state, sent = step(state, ReauthStarted(b"token"))
            assert sent == (SendAuth(0x19, M, b"token"),)
            reauth_started = True
        assert not state.answering
        assert (state.stage is not Stage.IDLE) == (method is not None)


# ---------------------------------------------------------------------------------------------
# K8S-SAT: the token file, read per exchange and watched in virtual time


def _rotate(path: Path, token: bytes) -> None:
    """Replace the file at once, as Kubernetes swaps a projected token in."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(token)
    os.replace(fresh, path)


def test_k8s_sat_reads_the_token_per_exchange(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"one\n")
    sat = K8sSatAuthenticator(token)
    assert (sat.method, sat.initial_data()) == ("K8S-SAT", b"one")
    _rotate(token, b"two")
    assert sat.initial_data() == b"two"
    assert sat.on_challenge(b"anything") == b"two"  # AIO's SDKs answer with the token again
    assert "two" not in repr(sat)
    assert str(token) in repr(sat)
    token.unlink()
    with pytest.raises(FileNotFoundError, match="token_file"):
        sat.initial_data()
    with pytest.raises(ValueError, match=r"^AIO_SAT_FILE: no such file"):
        ConnectionSettings(
            authenticator=K8sSatAuthenticator(tmp_path / "none", argument="AIO_SAT_FILE")
        )


def test_k8s_sat_asks_to_reauthenticate_once_per_new_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"one")
    sat = K8sSatAuthenticator(token, poll_interval=5.0)
    assert sat.initial_data() == b"one"  # CONNECT
    scheduler = TestScheduler()
    asked: list[float] = []
    sat.reauthentication_requests(scheduler).subscribe(lambda _: asked.append(scheduler.clock))

    scheduler.advance_to(12.0)
    assert asked == []  # unchanged: two checks, no request

    _rotate(token, b"two")
    scheduler.advance_to(14.0)
    assert asked == []  # not checked yet
    scheduler.advance_to(15.0)
    assert asked == [15.0]  # the next check finds it
    scheduler.advance_to(31.0)
    assert asked == [15.0]  # the same change is reported once
    assert sat.initial_data() == b"two"  # the re-authentication reads it

    _rotate(token, b"two")  # rewritten, same token (the server already has it)
    scheduler.advance_to(36.0)
    assert asked == [15.0]

    caplog.set_level(logging.WARNING, logger="rxmqtt.auth")
    token.write_bytes(b"")  # caught mid-write: empty
    scheduler.advance_to(41.0)
    assert asked == [15.0]
    assert "is empty" in caplog.text
    token.unlink()  # gone for a while
    scheduler.advance_to(46.0)
    assert asked == [15.0]
    token.write_bytes(b"three")
    scheduler.advance_to(51.0)
    assert asked == [15.0, 50.0]
    assert "three" not in caplog.text
    assert "two" not in caplog.text


def test_k8s_sat_a_token_that_changed_while_offline_goes_out_in_connect(tmp_path: Path) -> None:
    """Rotated while disconnected: the reconnect's CONNECT reads the new token, so the watch
    does not ask for a re-authentication the server does not need."""
    token = tmp_path / "token"
    token.write_bytes(b"one")
    sat = K8sSatAuthenticator(token, poll_interval=5.0)
    sat.initial_data()
    scheduler = TestScheduler()
    asked: list[float] = []
    sat.reauthentication_requests(scheduler).subscribe(lambda _: asked.append(scheduler.clock))
    _rotate(token, b"two")
    assert sat.initial_data() == b"two"  # a reconnect before the next check
    scheduler.advance_to(30.0)
    assert asked == []
