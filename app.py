"""ASAM Lab: Streamlit entry point (st.navigation over pages/)."""
import streamlit as st

st.set_page_config(page_title="ASAM Lab", page_icon="⛰️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/cifar_runs.py", title="CIFAR runs", icon="📈"),
    st.Page("pages/scale_invariance.py", title="Scale invariance", icon="⚖️"),
]

st.navigation(PAGES).run()
