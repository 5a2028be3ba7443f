"""``python -m helpers``: the course's command line (see :mod:`helpers.tools.cli`)."""

import sys

from helpers.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
