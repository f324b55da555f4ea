"""The core API's routers, one per resource; :func:`taskstream.core.api.create_api` mounts them.

- :mod:`.tasks`: a task's life, ``/api/tasks`` and ``/api/tasks/{id}/...``;
- :mod:`.batch`: ``POST /api/tasks/batch``;
- :mod:`.backfills`: ``POST`` and ``DELETE /api/tasks/{id}/backfill``;
- :mod:`.schedules`: ``GET /api/tasks/{id}/next`` and ``POST /api/schedules/preview``;
- :mod:`.executions`: ``/api/executions/{id}/logs``;
- :mod:`.workers`: ``/api/workers``, the executors;
- :mod:`.handlers`: ``/api/handlers``, what the core knows of them and their params;
- :mod:`.operations`: ``/health``, ``/ready``, ``/metrics``.
"""
