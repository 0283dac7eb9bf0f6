"""selfgym: Gymnasium environments, agents and reward modules for learning from self-made signals.

``import selfgym`` registers every ``selfgym/`` environment id (cheaply: string entry points,
nothing heavy is imported until an env is made), so ``gym.make("selfgym:selfgym/PlayTable-v0")``
and rl-zoo3's ``--gym-packages selfgym`` work.

Layers, each importing only from those below it (``tests/test_layers.py`` holds the contract):

* core: ``selfgym.registry``, ``selfgym.config``, ``selfgym.runs``, ``selfgym.metrics``,
  ``selfgym.hyperparams`` (data);
* ``selfgym.envs``;
* ``selfgym.llm`` (language models shared by judges and policies);
* ``selfgym.rewards``;
* ``selfgym.agents``;
* training, evaluation and the CLIs: ``selfgym.env_factory``, ``selfgym.train``,
  ``selfgym.evaluation``.
"""

__version__ = "0.1.0"

from selfgym import envs as _envs  # noqa: E402,F401  (registers the selfgym/ ids)
