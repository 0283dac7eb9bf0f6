"""Tuned hyperparameters: one YAML file per agent, keyed by env id (rl-zoo3's format).

Installed as package data of ``selfgym.hyperparams``, so they are found from any working
directory; ``selfgym.config.hyperparams_file`` looks them up.
"""
