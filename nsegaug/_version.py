"""The package version, in a module of its own so that recording it never imports the package's heavy parts."""

__version__ = "0.1.0"
