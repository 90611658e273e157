"""RecPress: the logic behind the pipeline's notebooks (data, KG, models, metrics, reports)."""

__version__ = "0.1.0"
