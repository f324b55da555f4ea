"""An ending's records: its order is done once every one is on the broker, never if one is not."""

from __future__ import annotations

from concurrent.futures import Future

from taskstream.executor.execution import Received, _Delivery
from tests.support import received_order


def _item(done: list[Received]) -> Received:
    return received_order("t", done.append)


def test_done_once_every_record_and_future_is_delivered_whatever_the_order() -> None:
    done: list[Received] = []
    item = _item(done)
    delivery = _Delivery(item, {})
    log_chunk: Future[None] = Future()
    delivery.expect()
    log_chunk.add_done_callback(delivery.future_done)
    delivery.expect()
    delivery.one(None)  # the outcome delivered before the sending ended
    delivery.expect()
    assert done == []
    delivery.one(None)  # everything sent
    assert done == [], "the dead-letter record and the log chunk are still out"
    delivery.one(None)
    assert done == []
    log_chunk.set_result(None)
    assert done == [item]


def test_never_done_if_one_record_is_not_delivered() -> None:
    done: list[Received] = []
    delivery = _Delivery(_item(done), {})
    delivery.expect()
    delivery.expect()
    delivery.one(RuntimeError("delivery timed out"))
    delivery.one(None)
    delivery.one(None)  # everything sent
    assert done == [], "the order runs again instead"
