"""A cheaper per-message hand-off from the Kafka consumer to the agents (faust-streaming 0.15).

Faust's fetcher (``Consumer._drain_messages``) hands every fetched record to the conductor with::

    await self.wait_first(callback(message), self.suspend_flow.wait())

``wait_first`` wraps both coroutines and the consumer's ``stopped``/``crashed`` events in four new tasks and
an ``asyncio.wait`` per record, so the callback can be abandoned when a rebalance suspends the flow while
the callback is blocked (full stream buffer, flow control, producer back-pressure). Profiled in
``bench/bench_worker.py --profile`` that race is the largest single cost of the worker per message.

Almost always the callback does not block at all: it decodes the record, puts the event into a stream
buffer with room and returns. :class:`FastConsumer` therefore starts the callback itself and only when it
actually suspends (yields to the event loop) wraps the rest of it in a task and races it against the flow
suspension exactly as Faust does. A callback that finishes without suspending could not have lost that
race either: nothing else runs on the loop meanwhile. The rest of the loop does what Faust's
(``faust/transport/consumer.py``, ``Consumer._drain_messages``) does: read offsets, gaps, periodic commits.

Fetch batches (``SipscopeApp.pack_topics``, from the setting ``worker.pack_records``): the agent's cost is
still mostly Faust's per-event machinery (event, stream iterator, buffer, ack). For the topics in
``pack_topics``, the records one fetch brought for one partition go
to the agent as ONE event whose value is a :class:`Packed` list of the records (``.offset``, ``.value``...).
Faust then acknowledges the group through the event of its last record; the offsets before it are
registered as a gap, which is how Faust already accounts for offsets it never delivers (compacted topics):
its commit counts them as done only up to an acknowledged offset after them, so nothing is committed before
the whole group was processed. :meth:`FastConsumer.forget_gaps` drops such registrations above a hole the
agent refetches (see ``streams/app.py``).

Use :class:`SipscopeApp` in place of ``faust.App`` (its transport creates the fast consumer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import ConsumerMessage
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service, ServiceT


class _Resumed:
    """Awaitable that drives a coroutine which already yielded ``first`` (``yield from`` by hand), so a task
    can take over a coroutine that was started outside it."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, out = self.coro, self.first
        self.first = None
        while True:
            try:
                sent = yield out
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and errors go to the coroutine
                try:
                    out = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    out = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Resumed(coro, first)


class Packed(list):
    """The records of one fetch for one partition, delivered as one event (see the module docstring)."""

    __slots__ = ()


def records_of(event: Any) -> Any:
    """The Kafka records an agent event stands for: the packed ones, or its own message."""
    value = event.value
    return value if type(value) is Packed else (event.message,)


class FastConsumer(faust_aiokafka.Consumer):
    """faust-streaming's aiokafka consumer with the per-record hand-off described in the module docstring."""

    def _new_consumer_thread(self) -> Any:
        return FetchTunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def forget_gaps(self, tp: Any, from_offset: int) -> None:
        """Drop gap registrations at and above ``from_offset`` (those records are being fetched again)."""
        gaps = self._gap.get(tp)
        if gaps:
            gaps.chop(from_offset, 2**63)

    async def _deliver(self, message: Any) -> None:
        coro = self.callback(message)
        if self.suspend_flow.is_set():
            await self.wait_first(coro, self.suspend_flow.wait())
            return
        try:
            first = coro.send(None)
        except StopIteration:
            return
        await self.wait_first(asyncio.ensure_future(_finish(coro, first)), self.suspend_flow.wait())

    async def _deliver_packed(self, tp: Any, msgs: list[Any]) -> None:
        last = msgs[-1]
        if len(msgs) == 1:
            await self._deliver(last)
            return
        if self.app.topics.acks_enabled_for(last.topic):
            await self._add_gap(tp, msgs[0].offset, last.offset - 1)
        packed = ConsumerMessage(last.topic, last.partition, last.offset, last.timestamp, last.timestamp_type,
                                 last.headers, last.key, Packed(msgs), None, None, None, last.tp,
                                 generation_id=last.generation_id)
        await self._deliver(packed)

    async def _accept(self, tp: Any, message: Any) -> bool:
        """Faust's per-record check: a record before the read offset was handed over already (False); a jump
        in the offsets is registered as a gap, as Faust does (compacted topics)."""
        offset = message.offset
        r_offset = self._read_offset[tp]
        if r_offset is not None and offset < r_offset:
            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
            return False
        if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, r_offset + 1, offset)
        return True

    async def _commit_due(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - exercised on the real stack
        """Faust's fetch loop (``faust/transport/consumer.py``) with the hand-off and packing described above."""
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        set_read_offset = self._read_offset.__setitem__
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany may not release the loop otherwise
                if self.should_stop:
                    continue
                pack = self.app.pack_topics  # the agents' sources; never table changelogs
                groups: dict[Any, list[Any]] = {}
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > 100:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    if not await self._accept(tp, message):
                        continue
                    if message.topic in pack:
                        group = groups.get(tp)
                        if group is None:
                            group = groups[tp] = []
                        group.append(message)
                    else:  # one by one (changelogs during table recovery; everything when not packing)
                        await self._commit_due()
                        await self._deliver(message)
                    set_read_offset(tp, message.offset)
                if groups:
                    await self._commit_due()
                    for tp, group in groups.items():
                        await self._deliver_packed(tp, group)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class FetchTunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, creating the aiokafka consumer with the app's ``fetch_min_bytes`` and
    ``fetch_max_wait_ms`` (Faust passes no minimum and a fixed 1.5 s wait: every producer batch then answers a
    fetch of its own, which at a few thousand records/s costs the broker and the worker more than the
    records do)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka 0.14 keeps both as attributes until start() builds its Fetcher from them
        consumer._fetch_min_bytes = self.app.fetch_min_bytes
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class FastTransport(faust_aiokafka.Transport):
    Consumer = FastConsumer


class HookedApp(faust.App):
    """``faust.App`` that awaits its ``before_wait_empty`` hooks whenever Faust is about to wait for every event
    in progress to be acknowledged (on stop and before partitions are revoked). The analytics role holds its
    events until a snapshot covers them: its hook writes that snapshot, so the wait ends at once instead of
    after the next periodic snapshot, or never on stop, where the timers that write them have ended."""

    before_wait_empty: tuple[Callable[[], Awaitable[None]], ...] = ()

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        for hook in self.before_wait_empty:
            await hook()
        await super()._consumer_wait_empty(consumer, logger)


class SipscopeApp(HookedApp):
    """``faust.App`` whose consumer is :class:`FastConsumer` (``kafka://`` brokers only)."""

    pack_topics: frozenset[str] = frozenset()
    """Topics whose records of one fetch and partition reach the agent as one :class:`Packed` event."""
    fetch_min_bytes: int = 1
    """Bytes a fetch waits for on the broker (aiokafka's default until the app sets it)."""
    fetch_max_wait_ms: int = 1500
    """Longest wait for ``fetch_min_bytes`` (Faust's own value until the app sets it)."""

    def _new_transport(self) -> Any:
        return FastTransport(self.conf.broker_consumer, self)


