"""Run many trainings as Ray Tune trials: ``python tune.py --env CartPole-v1 --agent ppo --seeds 0 1 2`` (see ``--help``)."""

import sys

from selfgym.tune import main

if __name__ == "__main__":
    sys.exit(main())
