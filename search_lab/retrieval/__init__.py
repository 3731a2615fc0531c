"""Build and query an index: from a configuration and a folder to ranked hits.

- ``pipeline``: a run's parts built once from its config (dataset, extractor, post, index).
- ``extract``, ``ray_executor``, ``cache``, ``shards``: extraction on a local pool or Ray, the
  feature cache keyed by content, out-of-core shards.
- ``collection``, ``distractor_features``: a dataset's features fitted and indexed.
- ``build``, ``streaming_build``: a search engine built in memory or shard by shard.
- ``engine``: the query object (``SearchEngine``); ``index_folder``, ``index_identity``,
  ``post_state``: its folder on disk, its name and identity, its saved post-processing.
- ``update``, ``catalog``, ``vector_store``: incremental updates of an index folder.
- ``rerank``, ``rerank_engine``, ``local_features``: geometric re-ranking.
- ``duplicates``, ``duplicate_space``: near-duplicate groups through a neighbour search, on
  the index's own vectors or, for a chain fitted on the collection, its photos' histograms.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "build": ["build_engine", "dataset_of_config"],
        "cache": ["FeatureCache"],
        "collection": ["Collection", "as_pipeline", "fit_and_index", "index_collection"],
        "duplicate_space": ["DuplicateSpace", "duplicate_space"],
        "duplicates": [
            "DuplicateGroups",
            "Pairs",
            "close_pairs",
            "components",
            "counted",
            "default_threshold",
            "find_duplicates",
            "pair_scores",
            "pairs_of",
        ],
        "engine": ["Hit", "SearchEngine"],
        "extract": ["build_extractor", "cached_features", "extract_files", "load_for"],
        "index_folder": ["check_replaceable", "list_engines", "scan_engines"],
        "index_identity": [
            "RESULT_NEUTRAL_KEYS",
            "check_target",
            "index_folder_name",
            "result_neutral",
            "saved_config",
            "significant",
            "summary_config",
        ],
        "local_features": ["collection_keypoints"],
        "pipeline": ["Pipeline", "build_pipeline", "make_index", "make_post"],
        "ray_executor": ["RayExecutor", "connect"],
        "rerank": [
            "RERANKERS",
            "RerankOptions",
            "RerankStats",
            "SV_DEFAULTS",
            "candidate_count",
            "inliers",
            "rerank_row",
        ],
        "rerank_engine": ["EngineReranker", "index_local_features"],
        "shards": ["RECORD", "ShardSet", "write_shards"],
        "streaming_build": ["build_and_save", "in_memory_reason"],
        "update": ["Report", "update_index"],
    },
)
