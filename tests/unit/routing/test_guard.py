"""The registry guard on a fake clock: caching, single flight, retry, breaker, batches, LRU."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from routing.errors import RegistryUnavailable
from routing.guard import (
    BreakerState,
    RegistryCircuitOpen,
    RegistryGuard,
    RegistryPolicy,
    RegistryTimeout,
)
from sbdh.errors import ConfigurationError, NotFound, TransientDeliveryError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeper:
    """Records the backoff waits and moves the fake clock on by them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


class Gone(NotFound):
    code = "gone"


class Register:
    """A scripted far party: answers from ``values``; ``script`` lists outcomes to give
    first (an exception to raise, or a value)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values = dict(values or {"a": "A", "b": "B", "c": "C", "d": "D"})
        self.calls: list[str] = []
        self.batches: list[list[str]] = []
        self.script: list[BaseException] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, key: str) -> str:
        self.calls.append(key)
        if self.gate is not None:
            await self.gate.wait()
        if self.script:
            raise self.script.pop(0)
        if key not in self.values:
            raise Gone(f"no {key}")
        return self.values[key]

    async def fetch_many(self, keys: Sequence[str]) -> dict[str, str | NotFound]:
        self.batches.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.script:
            raise self.script.pop(0)
        return {k: self.values[k] if k in self.values else Gone(f"no {k}") for k in keys}


def state(guard: RegistryGuard[str, str]) -> BreakerState:
    return guard.breaker.state


POLICY = RegistryPolicy(
    name="test register",
    ttl=60,
    negative_ttl=10,
    timeout=5,
    retries=2,
    backoff_base=1,
    backoff_cap=8,
    breaker_threshold=3,
    breaker_reset=30,
    max_entries=100,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeper(clock: Clock) -> Sleeper:
    return Sleeper(clock)


def make_guard(clock: Clock, sleeper: Sleeper, **changes: object) -> RegistryGuard[str, str]:
    policy = replace(POLICY, **changes)  # type: ignore[arg-type]
    return RegistryGuard(policy, clock=clock, sleep=sleeper, random=lambda: 0.5)


# ---------------------------------------------------------------------- caching


async def test_an_answer_is_cached_until_its_ttl_runs_out(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    assert await guard.lookup("a", register.fetch) == "A"
    clock.advance(59.9)
    register.values["a"] = "A2"
    assert await guard.lookup("a", register.fetch) == "A"
    assert register.calls == ["a"]
    clock.advance(0.1)
    assert await guard.lookup("a", register.fetch) == "A2"
    assert register.calls == ["a", "a"]
    stats = guard.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 2, 1)


async def test_not_found_is_cached_for_the_negative_ttl_and_raised_again(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    with pytest.raises(Gone, match="no x") as first:
        await guard.lookup("x", register.fetch)
    clock.advance(9)
    with pytest.raises(Gone) as again:
        await guard.lookup("x", register.fetch)
    assert again.value is first.value
    assert register.calls == ["x"]
    assert guard.stats().negative_hits == 1
    register.values["x"] = "X"
    clock.advance(1)  # 10 s: past the negative ttl, though far within the positive one
    assert await guard.lookup("x", register.fetch) == "X"
    assert register.calls == ["x", "x"]


async def test_not_found_is_neither_retried_nor_counted_by_the_breaker(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, breaker_threshold=1, negative_ttl=0), Register()
    for _ in range(3):
        with pytest.raises(Gone):
            await guard.lookup("x", register.fetch)
    assert register.calls == ["x", "x", "x"]  # negative_ttl 0: nothing cached
    assert sleeper.waits == []
    assert state(guard) is BreakerState.CLOSED


async def test_other_refusals_pass_through_uncached_and_unretried(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, breaker_threshold=1), Register()
    register.script = [ConfigurationError("token refused")]
    with pytest.raises(ConfigurationError):
        await guard.lookup("a", register.fetch)
    assert await guard.lookup("a", register.fetch) == "A"
    assert register.calls == ["a", "a"]
    assert sleeper.waits == []
    assert state(guard) is BreakerState.CLOSED


async def test_the_cache_keeps_the_most_recently_used_entries(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, max_entries=2), Register()
    await guard.lookup("a", register.fetch)
    await guard.lookup("b", register.fetch)
    await guard.lookup("a", register.fetch)  # a is now more recent than b
    with pytest.raises(Gone):
        await guard.lookup("x", register.fetch)  # negative entries count too: evicts b
    assert guard.stats().entries == 2
    register.calls.clear()
    await guard.lookup("a", register.fetch)
    await guard.lookup("b", register.fetch)
    assert register.calls == ["b"]


async def test_invalidate_forgets_one_key(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    await guard.lookup("a", register.fetch)
    await guard.lookup("b", register.fetch)
    guard.invalidate("a")
    await guard.lookup("a", register.fetch)
    await guard.lookup("b", register.fetch)
    assert register.calls == ["a", "b", "a"]


# ---------------------------------------------------------------------- single flight


async def test_concurrent_lookups_of_one_key_share_one_fetch(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    register.gate = asyncio.Event()
    lookups = [asyncio.create_task(guard.lookup("a", register.fetch)) for _ in range(10)]
    other = asyncio.create_task(guard.lookup("b", register.fetch))
    await asyncio.sleep(0)
    register.gate.set()
    assert await asyncio.gather(*lookups) == ["A"] * 10
    assert await other == "B"
    assert sorted(register.calls) == ["a", "b"]
    stats = guard.stats()
    assert (stats.misses, stats.shared) == (2, 9)


async def test_a_shared_not_found_reaches_every_waiter(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    register.gate = asyncio.Event()
    lookups = [asyncio.create_task(guard.lookup("x", register.fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    register.gate.set()
    outcomes = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(o, Gone) for o in outcomes)
    assert register.calls == ["x"]


async def test_a_cancelled_caller_does_not_cancel_the_fetch_for_the_others(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    register.gate = asyncio.Event()
    first = asyncio.create_task(guard.lookup("a", register.fetch))
    second = asyncio.create_task(guard.lookup("a", register.fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    register.gate.set()
    assert await second == "A"
    assert first.cancelled()
    assert register.calls == ["a"]
    assert await guard.lookup("a", register.fetch) == "A"  # and the answer was cached
    assert register.calls == ["a"]


async def test_a_fetch_cancelled_before_it_started_releases_its_waiters(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    waiter = asyncio.create_task(guard.lookup("a", register.fetch))
    await asyncio.sleep(0)
    assert register.calls == []
    for task in list(guard._tasks):
        task.cancel()
    # the waiter itself was not cancelled: to it, the abandoned lookup is a passing failure
    with pytest.raises(RegistryUnavailable, match="cancelled"):
        await asyncio.wait_for(waiter, 1)
    assert await guard.lookup("a", register.fetch) == "A"


# ---------------------------------------------------------------------- retry


async def test_a_transient_failure_is_retried_with_backoff_then_succeeds(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    register.script = [TransientDeliveryError("503"), TransientDeliveryError("503")]
    assert await guard.lookup("a", register.fetch) == "A"
    assert register.calls == ["a", "a", "a"]
    # full jitter drawn at 0.5 of the ceilings 1 and 2
    assert sleeper.waits == [0.5, 1.0]
    stats = guard.stats()
    assert (stats.fetches, stats.retries, stats.failures) == (3, 2, 0)
    assert state(guard) is BreakerState.CLOSED


async def test_after_its_retries_the_last_transient_failure_is_raised(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, retries=1), Register()
    register.script = [TransientDeliveryError("first"), TransientDeliveryError("second")]
    with pytest.raises(TransientDeliveryError, match="second"):
        await guard.lookup("a", register.fetch)
    assert len(register.calls) == 2
    assert guard.stats().failures == 1
    # the failure was not cached: the next lookup goes out again
    assert await guard.lookup("a", register.fetch) == "A"


async def test_an_attempt_that_takes_too_long_is_a_timeout(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, timeout=0.01, retries=1), Register()
    register.gate = asyncio.Event()  # never set: the register hangs
    with pytest.raises(RegistryTimeout) as caught:
        await guard.lookup("a", register.fetch)
    assert caught.value.registry == "test register"
    assert isinstance(caught.value, RegistryUnavailable)
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert register.calls == ["a", "a"]


# ---------------------------------------------------------------------- breaker


async def test_the_breaker_opens_refuses_probes_and_closes(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=2), Register()
    register.script = [TransientDeliveryError("down")] * 2
    for _ in range(2):
        with pytest.raises(TransientDeliveryError, match="down"):
            await guard.lookup("a", register.fetch)
    assert state(guard) is BreakerState.OPEN

    clock.advance(10)
    with pytest.raises(RegistryCircuitOpen) as refused:
        await guard.lookup("b", register.fetch)
    assert refused.value.retry_after == pytest.approx(20)
    assert refused.value.registry == "test register"
    assert isinstance(refused.value, RegistryUnavailable)
    assert refused.value.retry is True
    assert refused.value.http_status == 503
    assert register.calls == ["a", "a"]  # not called while open

    clock.advance(20)
    assert state(guard) is BreakerState.HALF_OPEN
    register.script = [TransientDeliveryError("still down")]
    with pytest.raises(TransientDeliveryError, match="still down"):
        await guard.lookup("a", register.fetch)
    assert state(guard) is BreakerState.OPEN  # one failed probe opens it again

    clock.advance(30)
    assert await guard.lookup("a", register.fetch) == "A"
    assert state(guard) is BreakerState.CLOSED
    stats = guard.stats()
    assert (stats.rejected, stats.breaker_opened, stats.failures) == (1, 2, 3)


async def test_a_half_open_breaker_lets_one_probe_through_without_retries(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, retries=3, breaker_threshold=1), Register()
    register.script = [TransientDeliveryError("down")] * 4
    with pytest.raises(TransientDeliveryError):
        await guard.lookup("a", register.fetch)
    assert len(register.calls) == 4
    clock.advance(30)
    register.gate = asyncio.Event()
    register.script = [TransientDeliveryError("down")]
    probe = asyncio.create_task(guard.lookup("a", register.fetch))
    await asyncio.sleep(0)
    with pytest.raises(RegistryCircuitOpen) as refused:
        await guard.lookup("b", register.fetch)  # the probe is out: others wait
    assert refused.value.retry_after == POLICY.timeout
    register.gate.set()
    with pytest.raises(TransientDeliveryError, match="down"):
        await probe
    assert len(register.calls) == 5  # the probe was tried once


async def test_a_refused_probe_leaves_the_breaker_half_open(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=1), Register()
    register.script = [TransientDeliveryError("down"), ConfigurationError("bad token")]
    with pytest.raises(TransientDeliveryError):
        await guard.lookup("a", register.fetch)
    clock.advance(30)
    with pytest.raises(ConfigurationError):
        await guard.lookup("a", register.fetch)
    assert state(guard) is BreakerState.HALF_OPEN
    assert await guard.lookup("a", register.fetch) == "A"  # the next probe may go
    assert state(guard) is BreakerState.CLOSED


async def test_a_not_found_probe_closes_the_breaker(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=1), Register()
    register.script = [TransientDeliveryError("down")]
    with pytest.raises(TransientDeliveryError):
        await guard.lookup("a", register.fetch)
    clock.advance(30)
    with pytest.raises(Gone):
        await guard.lookup("x", register.fetch)
    assert state(guard) is BreakerState.CLOSED


async def test_a_cancelled_probe_leaves_room_for_the_next(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=1), Register()
    register.script = [TransientDeliveryError("down")]
    with pytest.raises(TransientDeliveryError):
        await guard.lookup("a", register.fetch)
    clock.advance(30)
    register.gate = asyncio.Event()
    probe = asyncio.create_task(guard.lookup("a", register.fetch))
    while len(register.calls) < 2:  # until the probe is at the register
        await asyncio.sleep(0)
    for task in list(guard._tasks):
        task.cancel()
    with pytest.raises(RegistryUnavailable):
        await probe
    register.gate.set()
    assert state(guard) is BreakerState.HALF_OPEN
    assert await guard.lookup("a", register.fetch) == "A"
    assert state(guard) is BreakerState.CLOSED


async def test_cached_answers_are_served_while_the_breaker_is_open(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=1), Register()
    await guard.lookup("a", register.fetch)
    register.script = [TransientDeliveryError("down")]
    with pytest.raises(TransientDeliveryError):
        await guard.lookup("b", register.fetch)
    assert await guard.lookup("a", register.fetch) == "A"
    with pytest.raises(RegistryCircuitOpen):
        await guard.lookup("c", register.fetch)


# ---------------------------------------------------------------------- batches


async def test_lookup_many_fetches_only_what_the_cache_lacks_in_one_call(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    await guard.lookup("a", register.fetch)
    with pytest.raises(Gone):
        await guard.lookup("x", register.fetch)
    answer = await guard.lookup_many(["c", "a", "x", "y", "b", "c"], register.fetch_many)
    assert register.batches == [["c", "y", "b"]]
    assert list(answer) == ["c", "a", "x", "y", "b"]
    assert answer["a"] == "A"
    assert answer["b"] == "B"
    assert answer["c"] == "C"
    assert isinstance(answer["x"], Gone)
    assert isinstance(answer["y"], Gone)
    # everything is cached now, the not-found answers included
    again = await guard.lookup_many(["a", "b", "c", "x", "y"], register.fetch_many)
    assert register.batches == [["c", "y", "b"]]
    assert again == answer


async def test_a_key_the_register_leaves_out_counts_as_not_found(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard = make_guard(clock, sleeper)

    async def forgetful(keys: Sequence[str]) -> dict[str, str | NotFound]:
        return {"a": "A"}

    answer = await guard.lookup_many(["a", "b"], forgetful)
    assert answer["a"] == "A"
    assert isinstance(answer["b"], NotFound)


async def test_lookup_many_joins_a_fetch_already_under_way(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper), Register()
    register.gate = asyncio.Event()
    single = asyncio.create_task(guard.lookup("a", register.fetch))
    await asyncio.sleep(0)
    batch = asyncio.create_task(guard.lookup_many(["a", "b"], register.fetch_many))
    await asyncio.sleep(0)
    register.gate.set()
    assert await batch == {"a": "A", "b": "B"}
    assert await single == "A"
    assert register.calls == ["a"]
    assert register.batches == [["b"]]


async def test_lookup_many_splits_past_max_batch(clock: Clock, sleeper: Sleeper) -> None:
    guard, register = make_guard(clock, sleeper, max_batch=2), Register()
    answer = await guard.lookup_many(["a", "b", "c", "d", "e"], register.fetch_many)
    assert register.batches == [["a", "b"], ["c", "d"], ["e"]]
    assert isinstance(answer["e"], Gone)


async def test_a_failing_batch_fails_as_a_whole_and_caches_nothing(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, retries=1), Register()
    register.script = [TransientDeliveryError("503")] * 2
    with pytest.raises(TransientDeliveryError):
        await guard.lookup_many(["a", "b"], register.fetch_many)
    assert register.batches == [["a", "b"], ["a", "b"]]
    assert guard.stats().entries == 0
    assert await guard.lookup_many(["a", "b"], register.fetch_many) == {"a": "A", "b": "B"}


async def test_lookup_many_is_refused_while_the_breaker_is_open(
    clock: Clock, sleeper: Sleeper
) -> None:
    guard, register = make_guard(clock, sleeper, retries=0, breaker_threshold=1), Register()
    register.script = [TransientDeliveryError("503")]
    with pytest.raises(TransientDeliveryError):
        await guard.lookup_many(["a"], register.fetch_many)
    with pytest.raises(RegistryCircuitOpen):
        await guard.lookup_many(["a", "b"], register.fetch_many)
    assert len(register.batches) == 1


# ---------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"ttl": -1},
        {"negative_ttl": -1},
        {"timeout": 0},
        {"retries": -1},
        {"breaker_threshold": 0},
        {"breaker_reset": 0},
        {"max_entries": 0},
        {"max_batch": 0},
        {"backoff_base": 0},
    ],
)
def test_nonsense_policies_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        replace(POLICY, **changes)  # type: ignore[arg-type]
