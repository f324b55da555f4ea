"""The ``taskstream`` command line (typer), built on the public client for the APIs.

- :mod:`.app`: the root command, the services, ``--version`` and shell completion;
- :mod:`.tasks`: ``taskstream tasks``; :mod:`.observe`: ``workers`` and ``alerts``;
- :mod:`.api_options`: ``--api``/``--token``/``-v``/``--json`` and how a failed call is told;
- :mod:`.schedule_syntax`: the SCHEDULE argument; :mod:`.output`: tables, lines and JSON;
- :mod:`.dlq`, :mod:`.rebuild`: the log-level tools; :mod:`.dev`: ``taskstream dev``.
"""

from taskstream.cli.app import app, main

__all__ = ["app", "main"]
