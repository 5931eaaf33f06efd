"""Sub-commands of ``docpost``: each module defines ``register(subparsers)``.

A module registers one or more sub-commands and sets ``func`` on each parser; the
function receives the parsed arguments and returns the exit code.
"""
