"""search_lab: an image search laboratory (features x metrics x indexes, evaluated on Holidays)."""

__version__ = "0.1.0"
