"""`python -m loadtest SUITE ...`: the load suites (the same as `freshmesh load SUITE ...`)."""
import argparse
import sys

from loadtest import add_load_parser, run_load

parser = argparse.ArgumentParser(prog="python -m loadtest")
add_load_parser(parser.add_subparsers(dest="command", required=True), run_load)
sys.exit(run_load(parser.parse_args(["load", *sys.argv[1:]])))
