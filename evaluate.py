"""Evaluate a run: ``python evaluate.py --run logs/ppo/CartPole-v1_1`` (see ``--help``)."""

import sys

from selfgym.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
