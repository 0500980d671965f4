"""``python -m adamlib.experiments``: the command line (:mod:`adamlib.experiments.cli`)."""
import sys

from .cli import main


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`: not an error of the run
        sys.stderr.close()
        sys.exit(0)
