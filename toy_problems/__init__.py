"""Toy problems for teaching: 2-D losses, batched SGD/SAM/ASAM trajectories, region geometry.

No Streamlit here; every formula for eps comes from asam_core.perturbation.
"""
