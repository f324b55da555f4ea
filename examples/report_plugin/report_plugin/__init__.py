"""An example taskstream plugin: the ``example.report`` handler.

Installed, it registers :class:`~report_plugin.handlers.DailyReport` under the
``taskstream.handlers`` entry-point group, so a task can say ``"handler": "example.report"``.
"""

from report_plugin.handlers import DailyReport

__all__ = ["DailyReport"]
