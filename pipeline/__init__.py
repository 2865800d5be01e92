"""framediff: quantify how much images differ."""
__version__ = "0.1.0"
