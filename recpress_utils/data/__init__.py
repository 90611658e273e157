"""Data: synthetic generator, REES46 and MovieLens readers, preprocessing."""
