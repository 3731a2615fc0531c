"""The Streamlit app's layer: ``app.py`` (repo root) runs the pages in :mod:`search_lab.app.pages`.

The pages read top to bottom and lay results out; :mod:`search_lab.app.widgets` holds the
widgets and cached loaders they share. Everything that does not need Streamlit sits in small
modules by concern, each unit-tested on its own: :mod:`~search_lab.app.paths` (folders,
commands, image paths), :mod:`~search_lab.app.text` (escaped text, configurations in words),
:mod:`~search_lab.app.indexes` (built indexes), :mod:`~search_lab.app.uploads` (query images),
:mod:`~search_lab.app.queries` (one query and its AP), :mod:`~search_lab.app.runs` (evaluation
runs) and :mod:`~search_lab.app.datasets` (the datasets served). Image paths are only ever
built from names a loaded index or dataset holds (:func:`~search_lab.app.paths.collection_path`),
never from text a user typed.
"""

__all__: list[str] = []  # ``app.py`` runs the pages; nothing here is imported from outside
