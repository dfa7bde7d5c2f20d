"""What every script does with its arguments and its failures, with the
standard library only (so `--help` and input checks need nothing
installed): the one-line `fatal:` exit, a parser whose errors are one line,
and signals that unwind through every `finally`."""
import sys


class Fatal(Exception):
    """An impossible output (or a tool that failed): the message names the file and what is wrong. Exit 1."""
    code = 1


class BadInput(Fatal):
    """Input the script cannot use (a missing or malformed result file, runs
    that cannot be compared): exit 2, as sockbench's bad input."""
    code = 2


def fatal(msg, code=1):
    print(f"fatal: {msg}", file=sys.stderr)
    sys.exit(code)


def run(main):
    """Run a script's `main`; a Fatal it raises is one `fatal:` line, exit
    1 (2 for BadInput)."""
    try:
        main()
    except Fatal as e:
        fatal(str(e), e.code)


def interrupt_on_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so that every
    `finally` runs (stopping what the script started, removing its
    directories). Set explicitly: a job started in the background of a
    script has SIGINT ignored, and Python would keep ignoring it; SIGTERM
    and SIGHUP would otherwise end the interpreter without a `finally`."""
    import signal

    def stop(signum, _):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def parser(prog, doc):
    """An argparse parser for a script called `prog`: help from `doc`; a
    bad flag or value is one `fatal:` line and exit 2, like sockbench's."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"fatal: {message} (see {self.prog} --help)", file=sys.stderr)
            sys.exit(2)

    return Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
