import sys

try:
    from ._cli import main

    code = main()
except KeyboardInterrupt as exc:  # a signal while the command was still starting: no traceback
    from ._startup import interrupted_line

    print(interrupted_line(sys.argv[1:]), file=sys.stderr)
    code = 128 + int(getattr(exc, "signum", 2))
sys.exit(code)
