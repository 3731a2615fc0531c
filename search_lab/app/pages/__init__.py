"""The pages of ``app.py``: each module is a script ``st.navigation`` runs top to bottom."""
