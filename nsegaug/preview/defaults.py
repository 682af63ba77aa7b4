"""The preview's defaults, in a module of their own: the command line shows them without loading NumPy or Pillow."""

DEFAULT_TILE_SIZE = 320
# A tile of 8192 px a side is 200 MB of pixels; a sheet holds dozens. Larger is a typo, and also refused.
MAX_TILE_SIZE = 8192
DEFAULT_OPACITY = 0.5
DEFAULT_MASKS = 8
DEFAULT_COPIES = 4
PICKS = ("random", "most-changed", "least-changed")
