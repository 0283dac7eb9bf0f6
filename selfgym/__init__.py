"""selfgym core: registries, configuration, run folders, training and evaluation loops.

The user-facing packages are ``envs``, ``agents`` and ``rewards``; this package holds the
machinery that ``train.py`` and ``evaluate.py`` share.
"""

__version__ = "0.1.0"
