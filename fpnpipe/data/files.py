"""Why a path named by a manifest cannot be read as a file, in words a report can show."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_ERRNO_PROBLEMS: dict[int, str] = {
    errno.ELOOP: "is a symbolic link loop",
    errno.EACCES: "cannot be read (permission denied)",
    errno.EPERM: "cannot be read (operation not permitted)",
    errno.ENOTDIR: "not found (a folder on its path is a file)",
    errno.ENAMETOOLONG: "has a name too long for the file system",
}


def file_problem(path: str | Path) -> str | None:
    """None if `path` is (or links to) a regular file, else the problem as a predicate that follows a noun:
    "not found", "is a directory, not a file", "is a symbolic link loop", "is a broken symbolic link
    (its target is missing)", "is not a regular file (...)", "cannot be read (permission denied)".

    Only metadata is read (os.stat), so a FIFO or a device is never opened.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "is a broken symbolic link (its target is missing)" if os.path.islink(path) else "not found"
    except OSError as exc:
        return _ERRNO_PROBLEMS.get(exc.errno or 0, f"cannot be accessed ({os.strerror(exc.errno or 0)})")
    except ValueError:  # a NUL character in the path
        return "has an invalid name (NUL character)"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a device, pipe or socket)"
    return None
