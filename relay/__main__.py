"""python -m relay → the CLI."""

import sys

from relay.cli import main

sys.exit(main())
