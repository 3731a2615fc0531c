"""Score retrieval: the protocol, metrics, statistics, finished runs, their tables and comparisons, and tuning spaces."""
