"""Dataset layouts, created by name through one registry (:data:`DATASETS`).

Importing this package registers every built-in layout: ``holidays`` (INRIA Holidays),
``folders`` (one folder per group), ``labels`` (images plus a ``file,label`` CSV) and ``plain``
(every image under a folder tree, no ground truth: what ``layout=auto`` falls back to). A new
benchmark layout is one module here (a :class:`Layout` subclass registered with
``@DATASETS.register("name")``, imported below) plus, if it needs settings, a YAML file in
``conf/dataset/``.
"""

from search_lab.data.layouts import folders, holidays, labels, plain  # noqa: F401  (registration)
from search_lab.data.layouts.base import DATASETS, IMAGE_SUFFIXES, Layout, is_image

__all__ = ["DATASETS", "IMAGE_SUFFIXES", "Layout", "is_image"]
