"""The molgnn version, defined once (setup.cfg reads it)."""

__version__ = "0.1.0"
