"""Images in: which images there are, and how they are grouped.

- ``datasets``: a dataset folder loaded through its ``layouts`` (holidays, folders, labels, plain).
- ``splits``: tune/test sides and small subsets of groups.
- ``images``: decoding an image file (bounded, EXIF-turned, shrunk while decoding).
- ``distractors``: which extra images join a collection, in a seeded order.
- ``fetch``, ``archives``: downloading and unpacking datasets and weights.
- ``synth``, ``planted``: synthetic photos and planted near-duplicate sets.

``python -m search_lab.data`` (``__main__``) runs the data command.
"""

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
            "fingerprint_of",
            "layout_of",
            "load_dataset",
        ],
        "distractors": ["NO_GROUP", "PREFIX", "SHARD"],
        "fetch": ["ARCHIVES", "Archive", "download", "fetch"],
        "images": ["ImageSource", "load_image", "shrink"],
        "layouts": ["DATASETS"],
        "layouts.base": ["IMAGE_SUFFIXES"],
        "planted": ["EDITS", "ensure_planted", "read_truth"],
        "splits": ["check_groups", "group_subsets", "split_dataset"],
        "synth": ["generate", "synth_image"],
    },
)
