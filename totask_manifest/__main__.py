import sys

try:
    from ._cli import main

    code = main()
except KeyboardInterrupt:  # a signal while the command was still starting: no traceback
    print("totask-manifest: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
