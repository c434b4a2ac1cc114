"""What a reader's figures leave out, said on stderr: lines over the byte cap and lines that are
not a JSON object. Why: the figures go to stdout (a file, a pipe into ``jq``), where these counts
are easy to miss, and the exit code 1 they give says nothing of why on its own."""

from __future__ import annotations

import sys

from .._errors import agreeing, counted


def say_unread(command: str, *, invalid: int, too_long: int, figures: str = "the figures") -> None:
    """One line for each kind of line left unread (``invalid`` counts the ``too_long`` ones too),
    naming the rule and the command that names the lines."""
    if too_long:
        from .._manifest import long_lines

        them = agreeing(too_long, "it", "them")
        print(f"totask-manifest {command}: error: {counted(too_long, 'line', grouped=True)} "
              f"{agreeing(too_long, 'is', 'are')} over {long_lines.MAX_LINE_BYTES:,} bytes, more than Ground Truth's "
              f"100,000 characters, and {agreeing(too_long, 'was', 'were')} not read [line-too-long] (totask-manifest "
              f"validate names {them}); {figures} leave {them} out", file=sys.stderr)
    broken = invalid - too_long
    if broken:
        one = broken == 1
        print(f"totask-manifest {command}: error: {counted(broken, 'line', grouped=True)} {'is' if one else 'are'} "
              f"not a JSON object (a truncated or damaged manifest; totask-manifest validate names "
              f"{'it' if one else 'them'}); {figures} leave {'it' if one else 'them'} out", file=sys.stderr)
