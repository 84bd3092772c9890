"""CLRS data as plain NumPy arrays: requests, SplitData, and the content-addressed cache.

Importing this package does not import dm-clrs or TensorFlow; only building missing data does
(``workers.data.generate``), and that happens on the CPU side.
"""

from workers.data.cache import DataCache, Fetched, default_cache_dir, stop_generation_workers
from workers.data.probes import ProbeSpec
from workers.data.requests import (ALGORITHMS, DEFAULT_TRAIN_LENGTHS, SPLITS, DataError,
                                   SplitRequest, available_cores, default_pool_size, experiment_requests,
                                   make_request)
from workers.data.split_data import SplitData

__all__ = ["ALGORITHMS", "DEFAULT_TRAIN_LENGTHS", "SPLITS", "DataCache", "DataError", "Fetched",
           "ProbeSpec", "SplitData", "SplitRequest", "available_cores", "default_cache_dir", "default_pool_size",
           "experiment_requests", "make_request", "stop_generation_workers"]
