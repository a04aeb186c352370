"""Resilience for calls to national registries: cache, single flight, retry, circuit breaker.

Every registry client (SMP, KRR, population register, entity register, DNS) goes through a
:class:`RegistryGuard`. It knows nothing of HTTP: the client hands it a key and a coroutine
function that fetches the answer, and the guard decides whether to call it at all::

    lookup(key, fetch)
      │
      ├─ cached answer, younger than ttl ..................... returned        (hit)
      ├─ cached "not found", younger than negative_ttl ....... raised again    (negative hit)
      ├─ the same key already being fetched .................. wait for it     (single flight)
      ├─ breaker open ........................................ RegistryCircuitOpen
      └─ fetch, each attempt under ``timeout``
           ├─ value ............................. cached for ttl, breaker closed
           ├─ NotFound (sbdh.errors) ............ cached for negative_ttl, raised
           ├─ TransientDeliveryError / timeout .. retried ``retries`` times with backoff, then
           │                                      one failure for the breaker, and raised
           └─ anything else ..................... raised, not cached, not retried; the
                                                  breaker is left as it was

The breaker is the classic one: *closed* until ``breaker_threshold`` calls in a row fail,
then *open* for ``breaker_reset`` seconds, during which every call fails at once with
:class:`RegistryCircuitOpen` (a :class:`routing.errors.RegistryUnavailable`, so a
:class:`~sbdh.errors.TransientDeliveryError`: the message waits and is tried again; it never
fails because a register is down); then *half-open*: one call goes through as a probe,
without retries. Its success closes the breaker, its failure opens it again.

Keys are held in memory only and never logged (they are often national ids). The clock, the
sleep and the random source for the backoff jitter are injected, so tests run on a fake clock.

The errors the guard adds sit beside the clients' own, under :mod:`routing.errors`::

    RegistryUnavailable (routing.errors)   503  also: the shared fetch was cancelled under the
    │                                           callers waiting for it
    ├── RegistryCircuitOpen                503  not called: breaker open; ``retry_after`` seconds
    └── RegistryTimeout                    503  no answer within ``timeout``, on every attempt
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random as _random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from routing.errors import RegistryUnavailable
from sbdh.backoff import Backoff
from sbdh.errors import NotFound, TransientDeliveryError

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "GuardStats",
    "RegistryCircuitOpen",
    "RegistryGuard",
    "RegistryPolicy",
    "RegistryTimeout",
]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class RegistryCircuitOpen(RegistryUnavailable):
    """The register's circuit breaker is open: it was not called at all. ``retry_after`` says
    in how many seconds it will be tried again."""

    code: ClassVar[str] = "registry-circuit-open"

    def __init__(self, registry: str, retry_after: float) -> None:
        self.registry = registry
        #: seconds until the register will be tried again
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"the {registry} is unavailable (circuit breaker open); "
            f"it will be tried again in {self.retry_after:.1f} s",
            rule="registry-circuit-open",
        )


class RegistryTimeout(RegistryUnavailable):
    """The register did not answer within the policy's timeout (on every attempt)."""

    code: ClassVar[str] = "registry-timeout"

    def __init__(self, registry: str, timeout: float) -> None:
        self.registry = registry
        self.timeout = timeout
        super().__init__(
            f"the {registry} did not answer within {timeout:g} s", rule="registry-timeout"
        )


@dataclass(frozen=True)
class RegistryPolicy:
    """How one register is called. Times are in seconds."""

    #: the register's name as people say it ("population register"); used in errors and stats
    name: str
    #: how long an answer is trusted (0 turns the positive cache off)
    ttl: float = 3600.0
    #: how long a "not found" is trusted (0 turns the negative cache off)
    negative_ttl: float = 300.0
    #: the limit on one attempt
    timeout: float = 10.0
    #: how many times a transient failure is retried within one lookup (0 = try once)
    retries: int = 2
    backoff_base: float = 0.2
    backoff_cap: float = 5.0
    #: calls failing in a row that open the breaker
    breaker_threshold: int = 5
    #: how long the breaker stays open before one probe is let through
    breaker_reset: float = 30.0
    #: the most answers (positive and negative) kept; the least recently used go first
    max_entries: int = 10_000
    #: the most keys a batched fetch is given at once (KRR takes 1 to 1000)
    max_batch: int = 1000

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a registry policy needs a name")
        if self.ttl < 0 or self.negative_ttl < 0:
            raise ValueError("ttl and negative_ttl must not be negative")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.breaker_threshold < 1 or self.breaker_reset <= 0:
            raise ValueError("breaker_threshold must be at least 1 and breaker_reset positive")
        if self.max_entries < 1 or self.max_batch < 1:
            raise ValueError("max_entries and max_batch must be at least 1")
        # refuses a nonsense backoff now rather than at the first retry
        Backoff(base=self.backoff_base, cap=self.backoff_cap)

    @property
    def backoff(self) -> Backoff:
        """Exponential backoff with full jitter between retries."""
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """One breaker for one far party: closed → open after ``threshold`` failures in a row →
    half-open after ``reset`` seconds, when exactly one probe may go out at a time.

    Callers ask :meth:`admit` before a call and report the outcome with :meth:`succeeded`,
    :meth:`failed` or :meth:`released` (the call ended without telling anything about the
    party's health, for example it was cancelled).
    """

    def __init__(
        self,
        *,
        threshold: int,
        reset: float,
        clock: Callable[[], float] = time.monotonic,
        name: str = "far party",
    ) -> None:
        if threshold < 1 or reset <= 0:
            raise ValueError("threshold must be at least 1 and reset positive")
        self.name = name
        self.threshold = threshold
        self.reset = reset
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False
        #: how many times the breaker has opened (for metrics)
        self.opened = 0

    @property
    def state(self) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        if self._clock() < self._open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def admit(self) -> bool | None:
        """``False``: go ahead (closed). ``True``: go ahead as the half-open probe.
        ``None``: refused (open, or another probe is out)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return None

    def retry_after(self, probe_timeout: float) -> float:
        """Seconds until a refused call may be tried again."""
        if self._open_until is None:
            return 0.0
        if self._probing:
            return probe_timeout
        return max(0.0, self._open_until - self._clock())

    def succeeded(self) -> None:
        if self._open_until is not None:
            log.info("%s: circuit breaker closed again", self.name)
        self._failures = 0
        self._open_until = None
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        # a call that started before the breaker opened and fails now changes nothing; only
        # the probe, or the failure that reaches the threshold, (re)opens it
        if self._probing or (self._open_until is None and self._failures >= self.threshold):
            self._open_until = self._clock() + self.reset
            self.opened += 1
        self._probing = False

    def released(self, probe: bool) -> None:
        if probe:
            self._probing = False


@dataclass(frozen=True)
class GuardStats:
    """A snapshot of one guard's counters, for metrics."""

    name: str
    hits: int
    negative_hits: int
    misses: int
    #: lookups that joined a fetch already under way for the same key
    shared: int
    #: calls made to the register (a batch counts once; retries count too)
    fetches: int
    retries: int
    #: calls that failed after their retries (what the breaker counts)
    failures: int
    #: calls refused because the breaker was open
    rejected: int
    breaker_state: BreakerState
    breaker_opened: int
    entries: int


@dataclass(frozen=True)
class _Hit(Generic[V]):
    value: V
    expires: float


@dataclass(frozen=True)
class _Missing:
    error: NotFound
    expires: float


class RegistryGuard(Generic[K, V]):
    """Cache, single flight, retry and circuit breaker in front of one register.

    ``clock`` must be monotonic (``time.monotonic``, or a fake in tests); ``sleep`` waits
    between retries; ``random`` draws the backoff jitter.
    """

    def __init__(
        self,
        policy: RegistryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._backoff = policy.backoff
        self.breaker = CircuitBreaker(
            threshold=policy.breaker_threshold,
            reset=policy.breaker_reset,
            clock=clock,
            name=policy.name,
        )
        self._cache: OrderedDict[K, _Hit[V] | _Missing] = OrderedDict()
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._hits = self._negative_hits = self._misses = self._shared = 0
        self._fetches = self._retries = self._failures = self._rejected = 0

    # ------------------------------------------------------------------ public

    async def lookup(self, key: K, fetch: Callable[[K], Awaitable[V]]) -> V:
        """The register's answer for ``key``; raises the register's :class:`NotFound`."""
        hit = self._cached(key)
        if hit is not None:
            return hit.value
        future = self._inflight.get(key)
        if future is None:
            self._misses += 1
            future = self._claim(key)
            self._spawn(self._fill_one(key, fetch, future), {key: future})
        else:
            self._shared += 1
        return await asyncio.shield(future)

    async def lookup_many(
        self,
        keys: Iterable[K],
        fetch_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V | NotFound]]],
    ) -> dict[K, V | NotFound]:
        """Answers for every key, in the order given (duplicates once).

        Only the keys neither cached nor already being fetched go to ``fetch_many``, in one
        call (or one per ``max_batch`` keys). ``fetch_many`` answers a key with its value or a
        :class:`NotFound` instance; a key it leaves out counts as not found. A not-found key
        maps to its :class:`NotFound` here; a failure of the fetch itself (transient, breaker
        open) is raised for the whole batch.
        """
        wanted = list(dict.fromkeys(keys))
        results: dict[K, V | NotFound] = {}
        waiting: dict[K, asyncio.Future[V]] = {}
        missing: dict[K, asyncio.Future[V]] = {}
        for key in wanted:
            try:
                hit = self._cached(key)
            except NotFound as exc:
                results[key] = exc
                continue
            if hit is not None:
                results[key] = hit.value
            elif key in self._inflight:
                self._shared += 1
                waiting[key] = self._inflight[key]
            else:
                self._misses += 1
                waiting[key] = missing[key] = self._claim(key)
        if missing:
            self._spawn(self._fill_many(missing, fetch_many), missing)
        for key, future in waiting.items():
            try:
                results[key] = await asyncio.shield(future)
            except NotFound as exc:
                results[key] = exc
        return {key: results[key] for key in wanted}

    def invalidate(self, key: K) -> None:
        """Forget what is cached for ``key`` (a fetch under way still completes)."""
        self._cache.pop(key, None)

    def clear(self) -> None:
        self._cache.clear()

    def stats(self) -> GuardStats:
        return GuardStats(
            name=self.policy.name,
            hits=self._hits,
            negative_hits=self._negative_hits,
            misses=self._misses,
            shared=self._shared,
            fetches=self._fetches,
            retries=self._retries,
            failures=self._failures,
            rejected=self._rejected,
            breaker_state=self.breaker.state,
            breaker_opened=self.breaker.opened,
            entries=len(self._cache),
        )

    async def aclose(self) -> None:
        """Wait for the fetches under way (their callers may have gone)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ cache

    def _cached(self, key: K) -> _Hit[V] | None:
        """The live cached answer, ``None``; or raises the cached :class:`NotFound`."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.expires:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        if isinstance(entry, _Missing):
            self._negative_hits += 1
            # the same instance is raised for every hit: drop the last raise's traceback
            raise entry.error.with_traceback(None)
        self._hits += 1
        return entry

    def _store(self, key: K, value: V) -> None:
        if self.policy.ttl > 0:
            self._put(key, _Hit(value, self._clock() + self.policy.ttl))

    def _store_missing(self, key: K, missing: NotFound) -> None:
        if self.policy.negative_ttl > 0:
            self._put(key, _Missing(missing, self._clock() + self.policy.negative_ttl))

    def _put(self, key: K, entry: _Hit[V] | _Missing) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.policy.max_entries:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------------ single flight

    def _claim(self, key: K) -> asyncio.Future[V]:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        # when every caller has gone (cancelled), nobody reads the outcome: do not warn then
        future.add_done_callback(_consume)
        self._inflight[key] = future
        return future

    def _spawn(self, work: Awaitable[None], futures: Mapping[K, asyncio.Future[V]]) -> None:
        # the fetch runs in its own task so that a cancelled caller does not cancel it for
        # the others waiting on the same key
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            # a task cancelled before it started never ran its own clean-up
            for key, future in futures.items():
                self._reject(key, future, asyncio.CancelledError())

        task.add_done_callback(done)

    def _release(self, key: K, future: asyncio.Future[V]) -> bool:
        """Take ``key`` off the in-flight list; whether its future still needs an outcome."""
        if self._inflight.get(key) is future:
            del self._inflight[key]
        return not future.done()

    def _resolve(self, key: K, future: asyncio.Future[V], value: V) -> None:
        if self._release(key, future):
            self._store(key, value)
            future.set_result(value)

    def _reject(self, key: K, future: asyncio.Future[V], error: BaseException) -> None:
        if not self._release(key, future):
            return
        if isinstance(error, asyncio.CancelledError):
            # the callers were not cancelled, their lookup was: to them it is a passing failure
            error = RegistryUnavailable(
                f"the lookup in the {self.policy.name} was cancelled", rule="registry-cancelled"
            )
        if isinstance(error, NotFound):
            self._store_missing(key, error)
        future.set_exception(error)

    async def _fill_one(
        self, key: K, fetch: Callable[[K], Awaitable[V]], future: asyncio.Future[V]
    ) -> None:
        try:
            value = await self._call(functools.partial(fetch, key))
        except BaseException as exc:
            self._reject(key, future, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._resolve(key, future, value)

    async def _fill_many(
        self,
        futures: dict[K, asyncio.Future[V]],
        fetch_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V | NotFound]]],
    ) -> None:
        keys = list(futures)
        size = self.policy.max_batch
        try:
            for start in range(0, len(keys), size):
                chunk = keys[start : start + size]
                answer = await self._call(functools.partial(fetch_many, chunk))
                for key in chunk:
                    if key not in answer:
                        self._reject(key, futures[key], self._no_answer())
                        continue
                    outcome = answer[key]
                    if isinstance(outcome, NotFound):
                        self._reject(key, futures[key], outcome)
                    else:
                        self._resolve(key, futures[key], outcome)
        except BaseException as exc:
            for key, future in futures.items():
                self._reject(key, future, exc)
            if not isinstance(exc, Exception):
                raise

    def _no_answer(self) -> NotFound:
        return NotFound(
            f"the {self.policy.name} gave no answer for this key", rule="registry-no-answer"
        )

    # ------------------------------------------------------------------ retry and breaker

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        admission = self.breaker.admit()
        if admission is None:
            self._rejected += 1
            raise RegistryCircuitOpen(
                self.policy.name, self.breaker.retry_after(self.policy.timeout)
            )
        probe = admission
        attempts = 1 if probe else 1 + self.policy.retries
        try:
            for attempt in range(1, attempts + 1):
                self._fetches += 1
                try:
                    async with asyncio.timeout(self.policy.timeout):
                        result = await operation()
                except TimeoutError as exc:
                    failure: TransientDeliveryError = RegistryTimeout(
                        self.policy.name, self.policy.timeout
                    )
                    failure.__cause__ = exc
                except TransientDeliveryError as exc:
                    failure = exc
                except NotFound:
                    self.breaker.succeeded()  # the register answered: it is up
                    raise
                else:
                    self.breaker.succeeded()
                    return result
                if attempt == attempts:
                    self._failures += 1
                    before = self.breaker.state
                    self.breaker.failed()
                    if self.breaker.state is not before:
                        log.warning(
                            "%s: circuit breaker open for %g s after %s",
                            self.policy.name,
                            self.policy.breaker_reset,
                            failure.code,
                        )
                    raise failure
                self._retries += 1
                await self._sleep(self._backoff.delay(attempt, self._random))
        finally:
            # cancelled, refused, malformed: neither proves nor disproves that the register is up
            self.breaker.released(probe)
        raise AssertionError("unreachable")  # pragma: no cover


def _consume(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()
