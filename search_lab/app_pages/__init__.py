"""The Streamlit pages of ``app.py`` (Search, Compare, Experiments, Dataset) and their widgets.

Each page module is a script that ``st.navigation`` runs top to bottom; shared widgets and the
cached loaders live in :mod:`search_lab.app_pages.widgets`; everything that does not need
Streamlit lives in :mod:`search_lab.app_support`.
"""
