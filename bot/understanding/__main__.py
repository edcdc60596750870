"""`python -m bot.understanding`: the same JSON-lines tool as `python app.py understand`."""

import argparse
import sys

from bot.understanding.cli import run

parser = argparse.ArgumentParser(prog="python -m bot.understanding", description=__doc__)
parser.add_argument("--timings", action="store_true", help="add each message's elapsed_ms")
run(sys.stdin, sys.stdout, timings=parser.parse_args().timings)
