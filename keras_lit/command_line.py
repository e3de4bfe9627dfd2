"""`run_command_line`: the `main` of the `python -m keras_lit.*` tools."""

import sys


def run_command_line(build_parser, run, argv=None):
    """Parses `argv` with `build_parser()`, calls `run(args)`; an exit code.

    A `ValueError` (a user error) prints one `error: ...` line to stderr and
    gives 2.
    """
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
