"""Evaluate a run: ``python evaluate.py --run logs/ppo/CartPole-v1_1`` (see ``--help``)."""

import sys

from selfgym.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
