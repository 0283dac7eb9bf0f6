"""Train an agent: ``python train.py --env CartPole-v1 --agent ppo`` (see ``--help``)."""

import sys

from selfgym.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
