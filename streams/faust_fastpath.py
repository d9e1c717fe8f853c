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
race either: nothing else runs on the loop meanwhile. Everything else in the loop is Faust's own code
(``faust/transport/consumer.py``, ``Consumer._drain_messages``), unchanged.

Use :class:`SipscopeApp` in place of ``faust.App`` (its transport creates the fast consumer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
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


class FastConsumer(faust_aiokafka.Consumer):
    """faust-streaming's aiokafka consumer with the per-record hand-off described in the module docstring."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - Faust's loop, one line changed
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        suspended = self.suspend_flow.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        ensure_future = asyncio.ensure_future

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # the one change: run the callback inline until it suspends (see module docstring)
                            coro = callback(message)
                            if suspended():
                                await self.wait_first(coro, self.suspend_flow.wait())
                            else:
                                try:
                                    first = coro.send(None)
                                except StopIteration:
                                    pass
                                else:
                                    await self.wait_first(ensure_future(_finish(coro, first)),
                                                          self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)

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
            unset_flag(flag_consumer_fetching)


class FastTransport(faust_aiokafka.Transport):
    Consumer = FastConsumer


class SipscopeApp(faust.App):
    """``faust.App`` whose consumer is :class:`FastConsumer` (``kafka://`` brokers only)."""

    def _new_transport(self) -> Any:
        return FastTransport(self.conf.broker_consumer, self)
