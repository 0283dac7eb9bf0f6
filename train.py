"""Train an agent: ``python train.py --env CartPole-v1 --agent ppo`` (see ``--help``)."""

import sys

from selfgym.train import main

if __name__ == "__main__":
    sys.exit(main())
