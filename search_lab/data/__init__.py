"""Images in: datasets and their layouts, splits, distractors, downloads, archives, synthetic and planted images."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["distractors"],
    submod_attrs={
        "datasets": [
            "Dataset",
            "check_ground_truth",
            "default_root",
            "fingerprint",
            "load_dataset",
        ],
        "distractors": ["NO_GROUP", "PREFIX", "SHARD"],
        "fetch": ["ARCHIVES", "Archive", "download", "fetch"],
        "images": ["ImageSource", "load_image", "shrink"],
        "layouts.base": ["IMAGE_SUFFIXES"],
        "planted": ["EDITS", "ensure_planted", "read_truth"],
        "splits": ["check_groups", "group_subsets", "split_dataset"],
        "synth": ["generate", "synth_image"],
    },
)
