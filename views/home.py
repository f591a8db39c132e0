"""Home page: what SAM and ASAM are, their update rules, which page shows which figure, how to start."""
import streamlit as st

st.title("ASAM Lab")
st.markdown(
    "Learn, see and try **sharpness-aware training**. A minimum of the training loss generalizes better when the "
    "loss stays low in a whole neighbourhood of it. **SAM** (Foret et al., ICLR 2021) minimizes the worst loss in a "
    "ball of radius ρ around the weights. That ball is the same for every weight, so simply rescaling a network "
    "(which leaves its function unchanged) changes SAM's sharpness. **ASAM** (Kwon et al., ICML 2021) scales the "
    "ball with the weights, which makes its *adaptive sharpness* scale-invariant."
)

left, right = st.columns(2)
with left:
    st.subheader("SAM")
    st.latex(r"\min_w \max_{\|\epsilon\|_2 \le \rho} L(w + \epsilon)")
    st.latex(r"\hat\epsilon = \rho\,\frac{\nabla L(w)}{\|\nabla L(w)\|_2}, \qquad w \leftarrow w - \alpha\,\nabla L(w + \hat\epsilon)")
with right:
    st.subheader("ASAM")
    st.latex(r"\min_w \max_{\|T_w^{-1}\epsilon\|_p \le \rho} L(w + \epsilon), \qquad T_w = \mathrm{diag}(|w| + \eta)")
    st.latex(
        r"\hat\epsilon = \rho\,\frac{T_w^2\,\nabla L(w)}{\|T_w\,\nabla L(w)\|_2}\ (p = 2), \qquad "
        r"w \leftarrow w - \alpha\,\nabla L(w + \hat\epsilon)"
    )
st.caption(
    "Both take two gradients per step: one at w to find the perturbation ε̂ (the first-order solution of the inner "
    "maximization), one at w + ε̂ to descend. Every page computes ε̂ with the same function, asam_core.perturbation."
)

st.subheader("Pages")
st.markdown(
    "| page | paper | what you see |\n"
    "|---|---|---|\n"
    "| **Maximization regions** | ASAM Figure 1, Theorem 1 | the sphere, cuboid and ellipsoid around w and "
    "w′ = Aw; the exact worst case; the sharpness table |\n"
    "| **Trajectories** | ASAM Figure 3 | SGD, SAM and ASAM paths on \\|w₁·ReLU(w₂) − 0.04\\|; a convergence map |\n"
    "| **Scale invariance** | ASAM, adaptive sharpness | sharpness before and after rescaling a network |\n"
    "| **Noisy labels in 2-D** | SAM, label noise | training on corrupted labels with and without SAM |\n"
    "| **CIFAR runs** | SAM and ASAM, CIFAR-10 | launch and follow small CIFAR-10 runs |\n"
)

st.subheader("How to start")
st.markdown(
    "1. Open **Maximization regions**: move *a* and watch the sphere row of the table change while the cuboid and "
    "ellipsoid rows stay equal.\n"
    "2. Open **Trajectories**: pick the preset w₀ = (0.3, 0.033) and see SAM stuck while ASAM reaches the valley; "
    "then raise the learning rate.\n"
    "3. Every control lives in the page's URL: copy the address bar to hand a class the exact same screen."
)
st.page_link("views/regions.py", label="Maximization regions", icon=":material/crop_square:")
st.page_link("views/trajectories.py", label="Trajectories", icon=":material/timeline:")
