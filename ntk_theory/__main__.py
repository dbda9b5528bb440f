"""``python -m ntk_theory`` behaves like the ``ntk-theory`` command."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the (light) CLI module itself is imported
    _cmd = next((a for a in sys.argv[1:] if a and not a.startswith("-")), None)
    sys.stderr.write(f"ntk-theory{' ' + _cmd if _cmd else ''}: interrupted\n")
    sys.exit(130)

try:
    _rc = main()
except KeyboardInterrupt:  # a Ctrl-C landing after main() has handled one
    _rc = 130
sys.exit(_rc)
