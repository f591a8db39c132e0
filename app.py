"""ASAM Lab: Streamlit entry point (st.navigation over views/, shared sidebar)."""
import streamlit as st
import torch

from views import teacher

# The app's computations are tiny: one torch thread for the whole process, whatever OMP_NUM_THREADS
# says (spinning OpenMP threads stall on a shared machine; toy_problems/threads.py).
torch.set_num_threads(1)

presenting = teacher.presenter()
st.set_page_config(page_title="ASAM Lab", page_icon="⛰️", layout="wide",
                   initial_sidebar_state="collapsed" if presenting else "auto")
if presenting:
    teacher.presenter_style()
teacher.check_url()

PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/regions.py", title="Maximization regions", icon=":material/crop_square:"),
    st.Page("views/trajectories.py", title="Trajectories", icon=":material/timeline:"),
    st.Page("views/cifar_runs.py", title="CIFAR runs", icon=":material/monitoring:"),
    st.Page("views/studies.py", title="Studies", icon=":material/science:"),
    st.Page("views/scale_invariance.py", title="Scale invariance", icon=":material/balance:"),
    st.Page("views/sharpness_vs_gap.py", title="Sharpness vs gap", icon=":material/scatter_plot:"),
    st.Page("views/noisy_labels.py", title="Noisy labels in 2-D", icon=":material/label_off:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption("SAM: Foret et al., ICLR 2021 · ASAM: Kwon et al., ICML 2021. "
               "Every control is kept in the URL: copy it to share this exact screen.")
page.run()
with st.sidebar:
    teacher.share_box()
