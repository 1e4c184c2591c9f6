"""``python -m dean_nb run/report``: the command line of :mod:`dean_nb.cli`."""

import sys

from dean_nb.cli import main

if __name__ == "__main__":
    sys.exit(main())
