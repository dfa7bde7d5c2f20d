"""Writes that never go through a link the script did not make: output
directories made or refused, files written beside their name and renamed
into place (complete or absent). Standard library only."""
import os
import tempfile

from scripts.cli import Fatal


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
        # mkstemp makes it 0600; a report is for readers, as sockbench's own
        # files are: the mode a plain open() would give (0644 under umask 022).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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
