"""Home page: what SAM and ASAM are and where to start."""
import streamlit as st

st.title("ASAM Lab")
st.write("Learn, see and try sharpness-aware training (SAM and ASAM).")
