"""Writes tests/heavy.txt, the tests the fast tier leaves out, from a run's durations.

    .venv/bin/python -m pytest -q --durations=0 | .venv/bin/python tests/heavy.py [SECONDS]

A test is heavy when its setup, call and teardown took more than SECONDS (default 0.4) in that
run; `pytest -m "not slow and not heavy"` then runs the rest (tests/conftest.py marks them). Tests
added since the file was written are in the fast tier until it is written again.
"""

import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"([\d.]+)s (?:call|setup|teardown)\s+(\S+)")


def main() -> None:
    threshold = float(sys.argv[1]) if len(sys.argv) > 1 else 0.4
    seconds: Counter = Counter()
    for line in sys.stdin:
        match = LINE.match(line)
        if match:
            seconds[match.group(2)] += float(match.group(1))
    if not seconds:
        sys.exit("no durations on stdin: run pytest with --durations=0 and pipe its output here")
    heavy = sorted(node for node, s in seconds.items() if s > threshold)
    header = [f"# Tests over {threshold:g} s in a run of the default suite (setup + call + teardown);",
              "# written by tests/heavy.py (its docstring gives the command). Read by conftest.py."]
    Path(__file__).with_name("heavy.txt").write_text("\n".join(header + heavy) + "\n")
    print(f"{len(heavy)} heavy tests of {len(seconds)} timed")


if __name__ == "__main__":
    main()
