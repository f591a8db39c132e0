"""CIFAR runs: the command line (``python -m asam_core.runs``); the run store and worker live here too."""
