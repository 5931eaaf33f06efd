"""Sub-commands the bench adds to ``docpost`` through the ``docpost.commands`` entry point group."""
