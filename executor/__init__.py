"""The executor: runs handlers for the work orders of its queues and reports how they ended.

Where things live:

- :mod:`executor.service` — bootstrap: wires and starts everything, ``/health``;
- :mod:`executor.consumer` — one consumer per queue: receive, back-pressure, commits, revoke;
- :mod:`executor.offsets` — which offset is safe to commit (lowest unfinished);
- :mod:`executor.lanes`, :mod:`executor.backpressure` — priority lanes, pausing lanes;
- :mod:`executor.pool`, :mod:`executor.execution` — the bounded pool, one order's life;
- :mod:`executor.runner` — running a handler with its timeout and cancellation;
- :mod:`executor.outcomes` — an ending into events, retries and dead letters;
- :mod:`executor.cancellations` — ``CancelRequested`` to running executions;
- :mod:`executor.heartbeat` — ``WorkerHeartbeat`` on the workers topic;
- :mod:`executor.publisher`, :mod:`executor.metrics`, :mod:`executor.settings`.
"""

__all__: list[str] = []
