"""Ledger errors: one root type, specific subclasses, each with a stable reason code.

Messages name message UUIDs and states, never recipients.
"""

from __future__ import annotations

from docpost.errors import ConfigurationError, DocpostError


class LedgerError(DocpostError):
    """Root of every ledger error; ``code`` is stable, the text is for people."""

    code = "ledger.error"


class LedgerConfigError(LedgerError, ConfigurationError):
    """The ledger URL or connection cannot be used."""

    code = "ledger.config"


class UnknownMessage(LedgerError):
    """A message id or UUID the ledger does not hold."""

    code = "ledger.unknown-message"


class InvalidField(LedgerError):
    """A column that transitions may not set, or a value of the wrong kind."""

    code = "ledger.invalid-field"


class IllegalTransition(LedgerError):
    """A state change the state machine forbids (e.g. a backwards move)."""

    code = "ledger.illegal-transition"

    def __init__(
        self, from_state: str, to_state: str, message_uuid: str | None = None, count: int = 1,
        *, why: str | None = None,
    ) -> None:
        self.from_state = str(from_state)
        self.to_state = str(to_state)
        self.message_uuid = message_uuid
        self.count = count
        text = f"illegal transition {self.from_state} -> {self.to_state}"
        if message_uuid:
            text += f" for message {message_uuid}"
        if count > 1:
            text += f" (and {count - 1} more)"
        if why:
            text += f": {why}"
        super().__init__(text)


class UnexpectedState(IllegalTransition):
    """A message is not in the state the caller expected it to be in (``expected_from``)."""

    code = "ledger.unexpected-state"


class ClaimedMessage(LedgerError):
    """An operator's command on a message a worker holds a claim on (an unexpired lease): it is
    being worked on right now (e.g. sent to SF1601), so it cannot be stopped from outside."""

    code = "ledger.claimed"

    def __init__(self, message_uuid: str, worker: str | None = None, count: int = 1, *, action: str = "cancel") -> None:
        self.message_uuid = message_uuid
        self.worker = worker
        self.count = count
        text = f"cannot {action} message {message_uuid}: it is being worked on"
        if worker:
            text += f" (claimed by {worker})"
        if count > 1:
            text += f" (and {count - 1} more claimed)"
        text += "; try again when the stage has finished with it, or after its claim lease expires"
        super().__init__(text)
