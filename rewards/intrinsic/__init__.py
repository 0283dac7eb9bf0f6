"""Intrinsic rewards: RND, ICM, E3B, RE3, RIDE, NGU, Disagreement, episodic pseudo-counts, DIAYN
(with ``SkillWrapper``) and SimHash counts.

Registered lazily in ``rewards`` as ``rnd``, ``icm``, ``e3b``, ``re3``, ``ride``, ``ngu``,
``disagreement``, ``pseudo_counts``, ``diayn`` and ``simhash``. All but DIAYN and SimHash read
vector and image observations through the shared encoder of ``encoders.py``; the episodic ones
(E3B, RIDE, NGU, pseudo-counts) clear each env's memory at its episode end.
"""
