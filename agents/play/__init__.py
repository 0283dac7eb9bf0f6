"""Shared pieces of the learning-from-play agents (``play_gcbc``, ``play_lmp``, ``bc``).

``networks``: the mixture action head, the plan recogniser/proposer, the recurrent policy and
the KL between diagonal Gaussians. ``offline``: what every offline agent does the same way
(find, check and hash its dataset, normalise, the gradient-step loop on the Agent protocol,
replanning every kappa steps at test time). ``pixels``: the CNN encoder the three share on
``PlayTablePixelsGoal-v0`` (camera image + proprioception, goal image). The algorithms themselves are one file each:
``agents/play_gcbc.py``, ``agents/play_lmp.py``, ``agents/bc.py``.
"""
