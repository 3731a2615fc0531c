"""Build and query an index: the pipeline, extraction and its executors, the feature cache, index folders, updates, re-ranking, duplicates."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "build": ["build_engine", "dataset_of_config"],
        "cache": ["FeatureCache"],
        "collection": ["Collection", "as_pipeline", "fit_and_index", "index_collection"],
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
        "rerank_engine": ["EngineReranker"],
        "shards": ["RECORD", "ShardSet", "write_shards"],
        "streaming_build": ["build_and_save", "in_memory_reason"],
        "update": ["update_index"],
    },
)
