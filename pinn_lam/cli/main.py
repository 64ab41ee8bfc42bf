"""The ``pinn-lam`` command line: argument parsing and output only.

Each subcommand lives in ``pinn_lam/cli/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can fix (bad options,
unreadable files, a diverged run) end with one line on stderr and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from pinn_lam.errors import PinnLamError

#: subcommands in the order ``--help`` lists them
COMMANDS = ("solve", "list", "reference", "compare", "tune", "figures", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinn-lam",
        description="Solve PDEs with physics-informed neural networks trained by LAM, "
                    "compare optimizers, and make figures.",
        epilog="Run 'pinn-lam COMMAND --help' for the options of a command.",
    )
    from pinn_lam import __version__

    parser.add_argument("--version", action="version", version=f"pinn-lam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"pinn_lam.cli.{name}")
        command = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the command line); its exit status. A rank under
    ``torchrun`` ends its process here (:func:`pinn_lam.training.distributed.exit_if_data_parallel`)."""
    code = _main(argv)
    from pinn_lam.training.distributed import exit_if_data_parallel

    return exit_if_data_parallel(code)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the words as given, to repeat them
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    from pinn_lam.machine import tune_malloc, use_default_threads

    tune_malloc()  # every command trains or times training steps: keep freed memory for reuse
    if args.command != "bench":  # benchmarks state and set their own thread setups
        use_default_threads()  # a --threads option overrides it in the command
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("pinn-lam: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as error:
        from pinn_lam.training.memory import allocation_failure_message, is_allocation_failure

        if not is_allocation_failure(error):
            raise
        print(f"pinn-lam {args.command}: error: {allocation_failure_message(error)}", file=sys.stderr)
        return 1
    except (PinnLamError, ValueError, OSError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"pinn-lam {args.command}: error: {message}", file=sys.stderr)
        return 1 if isinstance(error, PinnLamError) else 2


if __name__ == "__main__":
    sys.exit(main())
