"""JSON log lines that say which connection, operation and subscription class a record
of the library is about (``LOGGING`` for a Django settings module)."""

from __future__ import annotations

import json
import logging
from typing import Any


# --8<-- [start:formatter]
class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the library's attributes when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("connection_id", "operation_id", "subscription_class"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"channels_graphql_typed": {"handlers": ["json"], "level": "INFO"}},
}
# --8<-- [end:formatter]
