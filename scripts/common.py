"""What every script shares, with the standard library only (so `--help` and
input checks need nothing installed): the one-line `fatal:` exit, size
labels, Markdown cells that cannot break a table, and writes that never go
through a link the script did not make.
"""
import os
import sys
import tempfile


class Fatal(Exception):
    """A bad input or an impossible output: the message names the file and what is wrong."""


def fatal(msg):
    print(f"fatal: {msg}", file=sys.stderr)
    sys.exit(1)


def size_label(b, _=None):
    """Bytes in the units people write: 64, 4K, 1M (1024-based)."""
    b = int(b)
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b >> 20}M"
    if b >= 1024 and b % 1024 == 0:
        return f"{b >> 10}K"
    return str(b)


def sizes_label(size, response=None):
    """`64`, or `512/16K` when the response size differs (0: none, as in throughput)."""
    if response in (None, 0, size):
        return size_label(size)
    return f"{size_label(size)}/{size_label(response)}"


def cell(value):
    """`value` as one Markdown table cell: a `|` or a line break in a run
    name, a command or a fingerprint must not end the cell or the row."""
    return " ".join(str(value).split("\n")).replace("\r", " ").replace("|", "\\|")


def subdir(parent, name):
    """`parent/name` as a directory of our own: made if missing; refused if
    it is a symbolic link (something planted there would have us write
    elsewhere) or not a directory."""
    path = os.path.join(parent, name)
    if os.path.islink(path):
        raise Fatal(f"{path}: is a symbolic link; refusing to write through a link this script did not make "
                    "(remove it, or name another output directory)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise Fatal(f"{path}: cannot make the directory ({e.strerror})")
    if not os.path.isdir(path):
        raise Fatal(f"{path}: exists and is not a directory")
    return path


def output_dir(path):
    """The directory a report goes to: made if missing, refused (one line)
    if it is a file or cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise Fatal(f"{path}: exists and is not a directory; name a directory for the output")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise Fatal(f"{path}: cannot make the output directory ({e.strerror})")
    if not os.access(path, os.W_OK | os.X_OK):
        raise Fatal(f"{path}: the output directory is not writable")
    return path


def replace_file(path, write):
    """Make `path` by `write(temp_path)` on a new file beside it, then
    rename it into place: complete or absent, and a link already at `path`
    is replaced, never written through."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
        os.close(fd)
    except OSError as e:
        raise Fatal(f"{path}: cannot write there ({e.strerror})")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise Fatal(f"{path}: cannot write it ({e.strerror})")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text):
    """Write `text` to `path` (see `replace_file`)."""
    def put(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    replace_file(path, put)


def parser(prog, doc):
    """An argparse parser for a script called `prog`: help from `doc`; a
    bad flag or value is one `fatal:` line and exit 2, like sockbench's."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"fatal: {message} (see {self.prog} --help)", file=sys.stderr)
            sys.exit(2)

    return Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
