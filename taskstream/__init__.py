"""taskstream: the command line, the ``dev`` supervisor and shared infrastructure."""

__all__: list[str] = []
