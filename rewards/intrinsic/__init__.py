"""Intrinsic rewards: RND, ICM, DIAYN (with ``SkillWrapper``) and SimHash counts.

Registered lazily in ``rewards`` as ``rnd``, ``icm``, ``diayn`` and ``simhash``.
"""
