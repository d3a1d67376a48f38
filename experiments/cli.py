"""Command-line parsing of the entry points that keep their own `absl.flags.FlagValues` (so that
tests can call their `main(argv)` in one process without touching the global flags)."""

from __future__ import annotations

import sys
from typing import Sequence

from absl import flags


def parse_module_flags(flag_values: flags.FlagValues, program: str,
                       argv: Sequence[str] | None = None) -> list[str]:
  """Parses `argv` (default: the command line's arguments) into `flag_values`; a bad flag exits
  with its message. Returns the arguments left after the flags, the program name first."""
  try:
    return flag_values([program] + list(sys.argv[1:] if argv is None else argv))
  except flags.Error as e:
    sys.exit(f"error: {e}")
