"""Helpers for the reply tests that still feed on the simulator's pull feed."""

from __future__ import annotations


def process_inbound(actor, **kwargs):  # noqa: ANN001, ANN201
    """A pass over the simulator's pull feed (the test bench's older path, given as a client)."""
    from docpost.channels.inbound import InboundClient
    from docpost.replies import service

    if "client" in kwargs:
        return service.process_inbound(actor, **kwargs)
    with InboundClient.from_settings() as client:
        return service.process_inbound(actor, client=client, **kwargs)
