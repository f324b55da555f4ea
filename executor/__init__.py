"""The executor: runs handlers for the work orders of its queues and reports how they ended.

Where things live:

- :mod:`taskstream.executor.service` — bootstrap: wires and starts everything, ``/health``;
- :mod:`taskstream.executor.consumer` — one consumer per queue: receive, back-pressure, commits,
  revoke;
- :mod:`taskstream.executor.offsets` — which offset is safe to commit (lowest unfinished);
- :mod:`taskstream.executor.lanes`, :mod:`taskstream.executor.backpressure` — priority lanes,
  pausing lanes;
- :mod:`taskstream.executor.pool`, :mod:`taskstream.executor.execution` — the bounded pool, one
  order's life;
- :mod:`taskstream.executor.runner` — running a handler with its timeout and cancellation;
- :mod:`taskstream.executor.outcomes` — an ending into events, retries and dead letters;
- :mod:`taskstream.executor.cancellations` — ``CancelRequested`` to running executions;
- :mod:`taskstream.executor.heartbeat` — ``WorkerHeartbeat`` on the workers topic;
- :mod:`taskstream.executor.publisher`, :mod:`taskstream.executor.metrics`,
  :mod:`taskstream.executor.settings`.
"""

__all__: list[str] = []
