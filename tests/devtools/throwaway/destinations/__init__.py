"""Plug-in modules, discovered as chalicelib.destinations.<name> once this folder is on
that package's `__path__` (the tests' fixture); never imported under this name."""
