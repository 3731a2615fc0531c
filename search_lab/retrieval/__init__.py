"""Build and query an index: the pipeline, extraction and its executors, the feature cache, index folders, updates, re-ranking, duplicates."""
