"""PlayTable: a pybullet Franka playground for learning from play (Play-LMP / CALVIN style).

Modules: ``layout`` (geometry + URDFs), ``scene`` (pybullet world), ``tasks`` (18 detectors),
``env`` (``PlayTableEnv``, ``PlayTableGoalEnv``), ``primitives`` (scripted expert, play policy),
``collect`` (play-data command), ``dataset`` (hindsight goal-window sampler), ``pixels``
(``PlayTablePixelsGoalEnv``: the goal env through the camera, with a goal image).
"""
