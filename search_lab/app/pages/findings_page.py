"""Findings: the latest report of ``python -m search_lab.report`` (the talk's four questions)."""

import streamlit as st

from search_lab.app import text as app_text
from search_lab.evaluation import outputs_dir
from search_lab.report import HTML_FILE, MD_FILE, blocks, latest_report

st.title("Findings")
folder = latest_report(outputs_dir())
if folder is None:
    st.info(
        f"No findings report in {app_text.plain(outputs_dir() / 'report')} yet. "
        "Make one with "
        "`python -m search_lab.report` (every feature, search method, metric and dimension on "
        "your dataset; runs already made are reused), or `python -m search_lab.report --quick` "
        "for a first look in under a minute."
    )
    st.stop()

st.caption(
    f"Report {app_text.plain(folder.name)} from {app_text.plain(folder)}. Remake it with "
    "`python -m search_lab.report`."
)
if (folder / HTML_FILE).is_file():
    st.download_button(
        "Download the self-contained HTML report",
        (folder / HTML_FILE).read_bytes(),
        file_name=f"findings-{folder.name}.html",
        mime="text/html",
        key="findings_html",
    )
for kind, content in blocks((folder / MD_FILE).read_text(encoding="utf-8")):
    if kind == "text":
        st.markdown(content)
        continue
    name, title = content.split("|", 1)
    if (folder / name).is_file():
        st.image(str(folder / name), caption=title)
    else:
        st.warning(f"Chart {app_text.plain(name)} is missing from {app_text.plain(folder)}.")
