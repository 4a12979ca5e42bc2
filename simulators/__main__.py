"""`python -m simulators`: the `freshmesh` command (demo, sim, and every other part)."""
import sys

from simulators.cli import main

sys.exit(main())
