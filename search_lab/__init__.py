"""search_lab: an image search laboratory (features x metrics x indexes, evaluated honestly).

The sub-packages follow the data's path through the program, each importing only those above
it in this list:

- ``core``: errors, parameter checks, registries, logging, safe files.
- ``data``: datasets and their layouts, splits, distractors, downloads, image decoding.
- ``features``: extractors (colour, texture, shape, CNN and its engines), post-processing.
- ``indexes``: distances and the search methods behind one interface.
- ``retrieval``: build, save, update and query an index; extraction, caching, re-ranking.
- ``evaluation``: the protocol, metrics, statistics, finished runs and their tables.
- ``cli``, ``report``, ``app``, ``benchmarks``: the entry layers (commands, findings report,
  Streamlit app, measurements).

The modules beside them are the thin ``python -m search_lab.<command>`` entry points.
"""

__version__ = "0.1.0"
