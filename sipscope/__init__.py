"""sipscope shared package: the ``sipscope`` command, settings and the wire records."""

__version__ = "0.1.0"
