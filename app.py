"""search_lab's web app: ``streamlit run app.py`` (``make app`` builds the default index first).

Six pages, chosen with ``st.navigation``; each is a script in ``search_lab/app/pages``.
"""

from pathlib import Path

import streamlit as st

from search_lab.core import install

PAGES = "search_lab/app/pages"
ICON = Path(__file__).parent / "search_lab/app/static/icon.png"  # local: no font server asked


def main() -> None:
    """The page set-up, the navigation between the pages, and the chosen page's run."""
    install()  # names in the server's log lines are escaped, as in the commands
    st.set_page_config(page_title="search_lab", page_icon=str(ICON), layout="wide")
    navigation = st.navigation(
        [
            st.Page(
                f"{PAGES}/search_page.py",
                title="Search",
                icon=":material/search:",
                url_path="home",  # the default page is served at "/"; this name must differ
                default=True,
            ),
            st.Page(
                f"{PAGES}/compare_page.py",
                title="Compare",
                icon=":material/compare:",
                url_path="compare",
            ),
            st.Page(
                f"{PAGES}/experiments_page.py",
                title="Experiments",
                icon=":material/table_chart:",
                url_path="experiments",
            ),
            st.Page(
                f"{PAGES}/findings_page.py",
                title="Findings",
                icon=":material/insights:",
                url_path="findings",
            ),
            st.Page(
                f"{PAGES}/photos_page.py",
                title="Your photos",
                icon=":material/folder_open:",
                url_path="photos",
            ),
            st.Page(
                f"{PAGES}/dataset_page.py",
                title="Dataset",
                icon=":material/photo_library:",
                url_path="dataset",
            ),
            # /search (a bookmark, a link in the docs) opens the Search page, not "Page not found"
            st.Page(
                f"{PAGES}/search_page.py",
                title="Search",
                icon=":material/search:",
                url_path="search",
                visibility="hidden",
            ),
        ]
    )
    navigation.run()


# Streamlit runs this file as "__main__". A worker process the app spawns (the CNN's extraction
# pool, when a folder is indexed from the Your photos page) imports it as "__mp_main__", where
# nothing of the app may run.
if __name__ != "__mp_main__":
    main()
