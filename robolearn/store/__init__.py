"""The demonstration store: zarr v3, crash-safe single writer, committed-episodes-only readers."""

from robolearn.store import codecs as _codecs  # noqa: F401  (registers the JPEG codec with zarr)
from robolearn.store.layout import EpisodeMeta, Feature, StoreError, features_from_space
from robolearn.store.reader import Store, open_store
from robolearn.store.repair import repair
from robolearn.store.stats import compute_stats, ensure_stats
from robolearn.store.writer import StoreWriter

__all__ = ["EpisodeMeta", "Feature", "Store", "StoreError", "StoreWriter", "compute_stats", "ensure_stats",
           "features_from_space", "open_store", "repair"]
