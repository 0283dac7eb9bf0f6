"""Aggregate runs by configuration: ``python compare.py logs/ppo`` (see ``--help``)."""

import sys

from selfgym.cli import compare_main

if __name__ == "__main__":
    sys.exit(compare_main())
