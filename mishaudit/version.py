"""The package version, in a module of its own: any layer may read it without importing the package's
__init__ (which sits above every layer, tests/test_layers.py)."""

__version__ = "0.2.0"
