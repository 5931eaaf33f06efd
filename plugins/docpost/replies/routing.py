"""The routing rules: which functional mailbox an inbound message belongs to, and why.

In order (each rule records a :class:`Decision`, whatever its outcome):

1. ``contact-point``: the message's contactPointID -> the hierarchy's Emne -> its mailbox.
   A closed Emne sends the message to manual distribution (``route.closed-contact-point``).
2. ``original-letter`` (replies): the original message in the ledger. Found: a thread link to it
   and its case number; if nothing routed yet, its stamped reply Emne. A letter sent with
   ``ikkeMuligt`` -> ``route.reply-not-possible``; not sent by docpost -> ``route.unknown-original``.
3. ``legacy-number``: an old Postkasse/Emne number in place of a contactPointID.

What no rule routes goes to manual distribution with the first reason recorded.
Pure functions: the ledger lookup is passed in, so the rules are tested without a database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from docpost.hierarchy import Emne, Hierarchy
from docpost.replies.parsing import InboundMessage, is_contact_point, legacy_number

RULE_CONTACT_POINT = "contact-point"
RULE_ORIGINAL = "original-letter"
RULE_LEGACY = "legacy-number"
RULE_PARSE = "parse"
RULE_MANUAL = "manual-assign"

ROUTED = "routed"  # this rule chose the mailbox
MANUAL = "manual"  # this rule sends the message to manual distribution (final)
NOT_FOUND = "not-found"  # this rule applied but found nothing; the next rule is tried
LINKED = "linked"  # thread link to the original letter (no mailbox chosen by it)
SKIPPED = "skipped"  # the rule did not apply

REASON_CLOSED = "route.closed-contact-point"
REASON_UNKNOWN_CP = "route.unknown-contact-point"
REASON_NOT_POSSIBLE = "route.reply-not-possible"
REASON_UNKNOWN_ORIGINAL = "route.unknown-original"
REASON_UNKNOWN_LEGACY = "route.unknown-legacy-number"
REASON_NO_ADDRESS = "route.no-address"

NOT_POSSIBLE = "ikkeMuligt"


@dataclass(frozen=True)
class Original:
    """What routing needs of the letter a reply answers (from the ledger)."""

    message_uuid: str
    case_number: str | None
    reply_type: str | None
    reply_emne_id: int | None
    reply_contact_point_id: str | None


@dataclass(frozen=True)
class Decision:
    """One rule's verdict: the rule, its outcome, the reason code, and the Emne it chose."""

    rule: str
    outcome: str
    reason: str | None = None
    emne_id: int | None = None
    mailbox: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Routing:
    """The result: the Emne and mailbox (routed) or the manual reason, plus every decision."""

    decisions: tuple[Decision, ...]
    emne: Emne | None
    reason: str | None
    original: Original | None

    @property
    def routed(self) -> bool:
        return self.emne is not None

    @property
    def rule(self) -> str | None:
        return next((d.rule for d in self.decisions if d.outcome == ROUTED), None)


def _routed(rule: str, emne: Emne, detail: str) -> Decision:
    return Decision(rule, ROUTED, None, emne.id, emne.mailbox, detail)


def route(message: InboundMessage, hierarchy: Hierarchy,
          find_original: Callable[[str], Original | None], today: dt.date) -> Routing:
    """Route one parsed inbound message by the rules above."""
    decisions: list[Decision] = []
    chosen: Emne | None = None
    final_reason: str | None = None

    # 1. contactPointID -> Emne
    cp = message.contact_point_id
    if cp and is_contact_point(cp):
        emne = hierarchy.by_contact_point(cp)
        if emne is None:
            decisions.append(Decision(RULE_CONTACT_POINT, NOT_FOUND, REASON_UNKNOWN_CP,
                                      detail=f"contactPointID {cp} is not in hierarchy {hierarchy.version}"))
        elif hierarchy.is_closed(emne, today):
            decisions.append(Decision(RULE_CONTACT_POINT, MANUAL, REASON_CLOSED, emne.id, emne.mailbox,
                                      f"Emne {emne.id} {emne.label!r} closed on "
                                      f"{hierarchy.closed_on(emne)}"))
            final_reason = REASON_CLOSED
        else:
            chosen = emne
            decisions.append(_routed(RULE_CONTACT_POINT, emne,
                                     f"contactPointID {cp} is Emne {emne.id} {emne.label!r}"))
    else:
        decisions.append(Decision(RULE_CONTACT_POINT, SKIPPED, detail="no contactPointID"))

    # 2. the original letter (replies)
    original: Original | None = None
    if message.reply_to:
        original = find_original(message.reply_to)
        if original is None:
            decisions.append(Decision(RULE_ORIGINAL, NOT_FOUND, REASON_UNKNOWN_ORIGINAL,
                                      detail=f"messageUUID {message.reply_to} was not sent by docpost"))
        else:
            decisions.append(Decision(RULE_ORIGINAL, LINKED, None, original.reply_emne_id, None,
                                      f"reply to {original.message_uuid}, case "
                                      f"{original.case_number or '-'}"))
            if chosen is None and final_reason is None:
                if original.reply_type == NOT_POSSIBLE or not original.reply_emne_id:
                    decisions.append(Decision(RULE_ORIGINAL, MANUAL, REASON_NOT_POSSIBLE,
                                              detail="the letter was sent with reply ikkeMuligt"))
                    final_reason = REASON_NOT_POSSIBLE
                else:
                    emne = hierarchy.emne(original.reply_emne_id)
                    if emne is None:
                        decisions.append(Decision(RULE_ORIGINAL, NOT_FOUND, REASON_UNKNOWN_CP,
                                                  detail=f"stamped Emne {original.reply_emne_id} is "
                                                  "no longer in the hierarchy"))
                    elif hierarchy.is_closed(emne, today):
                        decisions.append(Decision(RULE_ORIGINAL, MANUAL, REASON_CLOSED, emne.id,
                                                  emne.mailbox, f"stamped Emne {emne.id} closed on "
                                                  f"{hierarchy.closed_on(emne)}"))
                        final_reason = REASON_CLOSED
                    else:
                        chosen = emne
                        decisions.append(_routed(RULE_ORIGINAL, emne,
                                                 f"the letter's stamped reply Emne {emne.id} {emne.label!r}"))
    else:
        decisions.append(Decision(RULE_ORIGINAL, SKIPPED, detail="not a reply (no ReplyData)"))

    # 3. legacy Postkasse/Emne numbers
    legacy = message.legacy or legacy_number(message.contact_point_id)
    if legacy and chosen is None and final_reason is None:
        postkasse_id, emne_id = legacy
        emne = hierarchy.emne(emne_id)
        if emne is None or (postkasse_id is not None and emne.postkasse_id != postkasse_id):
            decisions.append(Decision(RULE_LEGACY, NOT_FOUND, REASON_UNKNOWN_LEGACY,
                                      detail=f"legacy number {postkasse_id or ''}/{emne_id} names no Emne"))
        elif hierarchy.is_closed(emne, today):
            decisions.append(Decision(RULE_LEGACY, MANUAL, REASON_CLOSED, emne.id, emne.mailbox,
                                      f"legacy Emne {emne.id} closed on {hierarchy.closed_on(emne)}"))
            final_reason = REASON_CLOSED
        else:
            chosen = emne
            decisions.append(_routed(RULE_LEGACY, emne, f"legacy Emne number {emne.id} {emne.label!r}"))

    if chosen is None and final_reason is None:
        final_reason = next((d.reason for d in decisions if d.reason), REASON_NO_ADDRESS)
        if final_reason == REASON_NO_ADDRESS:
            decisions.append(Decision(RULE_CONTACT_POINT, MANUAL, REASON_NO_ADDRESS,
                                      detail="no contactPointID, no original letter, no legacy number"))
    return Routing(tuple(decisions), chosen, None if chosen else final_reason, original)
