"""The error type shared by docpost's configuration files (contact hierarchy, sending profiles)."""

from __future__ import annotations

from pathlib import Path

from docpost.errors import ConfigurationError


class ConfigFileError(ConfigurationError):
    """A problem in a configuration file, naming the file and the line, with a stable code."""

    code = "config.invalid"
    kind = "config"  # what the file is, for messages without a path

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.all_errors: tuple[ConfigFileError, ...] = (self,)

    @property
    def location(self) -> str:
        """``file:line`` (or what of it is known)."""
        if self.path and self.line:
            return f"{self.path}:{self.line}"
        return self.path or (f"line {self.line}" if self.line else f"<{self.kind}>")

    def __str__(self) -> str:
        return f"{self.location}: {self.message} [{self.code}]"

    def __reduce__(self):  # picklable across processes (Airflow tasks, multiprocessing)
        return (_rebuild, (type(self), self.message, self.path, self.line))


def _rebuild(cls, message, path, line):
    return cls(message, path=path, line=line)
