"""``python -m ntk_theory`` behaves like the ``ntk-theory`` command."""

import sys

from .cli import main

sys.exit(main())
