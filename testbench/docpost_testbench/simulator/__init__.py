"""The SF1601 simulator: KombiPostAfsend's endpoints, mailboxes, receipts and faults.

``create_app`` builds the ASGI app; ``start_simulator`` runs it (thread or subprocess) for
tests and the demo; ``docpost simulator`` runs it from the command line. See
docs/sf1601-simulator.md.
"""

from docpost_testbench.simulator.app import Faults, SimulatorConfig, create_app, load_register
from docpost_testbench.simulator.runner import SimulatorHandle, serve, start_simulator

__all__ = ["Faults", "SimulatorConfig", "SimulatorHandle", "create_app", "load_register", "serve",
           "start_simulator"]
