"""One error model for docpost: one root, a stable code, a message without personal data.

Every error docpost raises is a :class:`DocpostError`. Its ``code`` is stable and spelled
``area.kind-of-problem`` (``render.address-too-long``, ``storage.unavailable``); its ``message``
is plain language and never carries personal data or letter text (a third-party exception's text
is never copied into it: name its type instead).

What the stages do with an error raised while working on one letter depends on its kind:

- :class:`Unavailable`: infrastructure trouble (S3, the database, a mail server, a remote
  service unreachable): not the letter's fault, never final for it. The letter keeps its state
  and the task fails, so that Airflow retries it.
- :class:`ConfigurationError`: the deployment's own configuration is broken (a profiles or
  hierarchy file): not the letter's fault either; handled like :class:`Unavailable`.
- any other :class:`DocpostError`: the letter's own problem: REJECTED (it breaks the submission
  contract) or FAILED (it cannot be delivered), with its code and a report.
- any other exception (a bug, a library's exception): the letter waits with
  ``internal.<ExceptionType>`` and is tried again by later runs, a bounded number of times.
"""

from __future__ import annotations


class DocpostError(Exception):
    """Root of every docpost error. ``code`` is stable; ``message`` carries no personal data."""

    code = "docpost.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class Unavailable(DocpostError):
    """Infrastructure trouble: retried, never made final for a letter."""

    code = "infrastructure.unavailable"


class ConfigurationError(DocpostError):
    """The deployment's configuration cannot be used: fixed by an operator, never the letter's fault."""

    code = "config.invalid"


def is_infrastructure(exc: BaseException) -> bool:
    """Trouble that is no letter's, receipt's or message's fault: the work stops for a retry and
    nothing is made final for it.

    :class:`Unavailable` and :class:`ConfigurationError`, a lost connection or a timeout, and every
    database error except those about one row's values (``DataError``, ``IntegrityError`` on a
    connection that is still good).
    """
    if isinstance(exc, (Unavailable, ConfigurationError, ConnectionError, TimeoutError)):
        return True
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.DBAPIError):
        return exc.connection_invalidated or not isinstance(exc, (sa.DataError, sa.IntegrityError))
    return isinstance(exc, (sa.DisconnectionError, sa.TimeoutError))


def internal_code(exc: BaseException) -> str:
    """The code of an unexpected exception: ``internal.<ExceptionType>`` (its text is never used)."""
    return f"internal.{type(exc).__name__}"


def describe(exc: BaseException, *, trace: bool = False) -> str:
    """What may be logged of any exception: a docpost error as it is, any other by type only.

    With ``trace``, where it was raised (file, line, function of each frame, no values and no
    message): enough to find a bug, nothing of the letter it was working on."""
    text = str(exc) if isinstance(exc, DocpostError) else (
        f"{type(exc).__module__}.{type(exc).__qualname__} [{internal_code(exc)}]")
    if trace and exc.__traceback__ is not None:
        import traceback

        frames = traceback.extract_tb(exc.__traceback__)
        text += "".join(f"\n  at {f.filename}:{f.lineno} in {f.name}" for f in frames)
    return text
