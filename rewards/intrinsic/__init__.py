"""Intrinsic rewards: RND, ICM, E3B, RE3, DIAYN (with ``SkillWrapper``), METRA and SimHash counts.

Registered lazily in ``rewards`` as ``rnd``, ``icm``, ``e3b``, ``re3``, ``diayn``, ``metra`` and ``simhash``.
RND, ICM, E3B and RE3 read vector and image observations through the shared encoder of
``encoders.py``.
"""
