"""Safe file writing: check outputs before the work, write through a temporary name and rename.

Rules (README, "Output files"):
- a regular file (or a new name) is written to a temporary name beside it and renamed over it, so a
  failure or a termination signal never leaves half a file;
- a symlink is followed on purpose: the file it points to is replaced atomically, the link stays;
- a special file (a device such as /dev/null or /dev/stdout, a FIFO) is written in place by the
  text writers, and refused as a model/binary output (it cannot be renamed over or read back);
- an output that is the same file as an input (same inode: hard links and symlinks included) is
  refused unless the caller allows it, and two outputs of one command never share a path;
- a replaced file keeps its permission bits (and its owner and group where allowed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgekit.errors import BadInputError, first_line

# errors that mean "this output cannot be written", as opposed to a bug: one line, exit 2
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}  # only when about the output itself (not an input)


def is_special(path: str | Path) -> bool:
    """True for an existing device, FIFO or socket (followed through symlinks), and for the
    /dev/stdout-style names (/dev/*, /proc/self/fd/*) even when they point to a regular file: a
    redirected stream must be written where it is, not renamed over."""
    if str(path).startswith(("/dev/", "/proc/self/fd/")) and os.path.exists(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file: same inode (hard links, symlinks) or same resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return Path(a).resolve() == Path(b).resolve()


def check_not_input(output: str | Path, inputs: Iterable[str | Path | None], flag: str = "") -> None:
    """Refuse an output that would overwrite one of ``inputs``; ``flag`` names the opt-in, if any."""
    for source in inputs:
        if source is not None and Path(output).exists() and same_file(output, source):
            hint = f" (pass {flag} to replace it)" if flag else ""
            raise BadInputError(f"output {output} is the input file {source}: refusing to overwrite it{hint}")


def check_distinct(outputs: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse two outputs of one command at one path (same resolved path, or the same existing file);
    ``outputs``: (option, path) pairs, e.g. ("-o", Path("q.onnx")), ("--json", None)."""
    seen: list[tuple[str, Path]] = []
    for flag, path in outputs:
        if path is None or is_special(path):  # several streams may go to one device (/dev/null)
            continue
        for other_flag, other in seen:
            if same_output(Path(path), other):
                raise BadInputError(f"{flag} {path} is the same file as {other_flag} {other}: "
                                    "give each output its own path")
        seen.append((flag, Path(path)))


def same_output(a: str | Path, b: str | Path) -> bool:
    """Two output paths that would be one file: same inode, or same path once symlinks are resolved."""
    if os.path.exists(a) and os.path.exists(b):
        return same_file(a, b)
    return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


def check_output_path(target: str | Path, special_ok: bool = False) -> Path:
    """Fail early, before any work, if ``target`` cannot be written; returns the path to write.

    A symlink resolves to the file it points to. ``special_ok``: a device or FIFO is acceptable
    (written in place); otherwise it is refused.
    """
    target = Path(target)
    if target.is_dir():
        raise BadInputError(f"output path {target} is a directory")
    if is_special(target):
        if not special_ok:
            raise BadInputError(f"output path {target} is a device or FIFO, not a regular file")
        if not os.access(target, os.W_OK):
            raise BadInputError(f"cannot write to {target}: permission denied")
        return target
    if target.is_symlink():
        resolved = Path(os.path.realpath(target))
        if resolved.is_symlink():  # realpath stops on a loop
            raise BadInputError(f"output path {target} is a symlink loop")
        target = resolved
    if not target.parent.is_dir():
        raise BadInputError(f"output directory {target.parent} does not exist")
    probe_folder(target.parent)
    return target


def probe_folder(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only reliable writability test (root, read-only mounts)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".edgekit-probe-", dir=folder)
    except OSError as exc:
        raise BadInputError(f"cannot write to folder {folder}: {exc.strerror or first_line(exc)}") from None
    os.close(fd)
    os.unlink(name)


def write_error(target: Path, exc: OSError, *names: str | Path) -> BadInputError | None:
    """A one-line error for an OSError that means ``target`` cannot be written (disk full, read-only
    filesystem, or permission denied on ``target``/``names``); None for any other OSError."""
    about_output = exc.filename is None or str(exc.filename) in {str(target), *map(str, names)}
    if exc.errno in _FULL_ERRNOS or (exc.errno in _DENIED_ERRNOS and about_output):
        return BadInputError(f"cannot write {target}: {exc.strerror or first_line(exc)}")
    return None


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path (same suffix); on success it replaces ``target``, on error it is removed.

    A symlink ``target`` is followed: the file it points to is replaced and the link kept.
    """
    target = check_output_path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) or BadInputError(f"cannot write {target}: {first_line(exc)}") from None
    os.close(fd)
    temporary = Path(name)  # 0600 while written (mkstemp); the final mode is set before the rename
    try:
        yield temporary
        keep_mode(temporary, target)
        os.replace(temporary, target)
    except OSError as exc:
        error = write_error(target, exc, temporary)
        if error is None:
            raise
        raise error from None
    finally:
        temporary.unlink(missing_ok=True)


def keep_mode(temporary: str | Path, target: str | Path) -> None:
    """Give ``temporary`` the mode (and owner and group, where allowed) of the file ``target`` it is
    about to replace; a new file gets the usual 0666 less the umask. Setuid/setgid bits are dropped."""
    try:
        info = os.stat(target)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        return
    for owner, group in ((info.st_uid, info.st_gid), (-1, info.st_gid)):  # root: both; a user: its groups
        try:
            os.chown(temporary, owner, group)
            break
        except OSError:
            continue
    os.chmod(temporary, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def replace_file(source: str | Path, target: str | Path) -> None:
    """``os.replace(source, target)``, the replaced ``target`` keeping its mode (see ``keep_mode``)."""
    keep_mode(source, target)
    os.replace(source, target)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target``: atomically for files, in place for devices and FIFOs."""
    path = check_output_path(target, special_ok=True)
    if is_special(path):
        try:
            with open(path, "a", encoding="utf-8") as stream:  # append: never truncate a redirected stream
                stream.write(text)
        except OSError as exc:
            raise write_error(path, exc) or BadInputError(f"cannot write {path}: {first_line(exc)}") from None
        return
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_npz(path: str | Path, kind: str) -> dict:
    """All arrays of an .npz file; ``kind`` names it in errors ('inputs', 'calibration')."""
    import zipfile
    import zlib

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{kind} file not found: {path}")
    with path.open("rb") as stream:
        if stream.read(4) != b"PK\x03\x04":  # .npz files are zip archives
            raise BadInputError(f"{kind} file {path} is not an .npz archive (numpy.savez)")
    try:
        check_npz_members(path, kind)
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # damaged archive
        raise BadInputError(f"cannot read {kind} file {path} as .npz: {first_line(exc)}") from None


MAX_NPZ_BYTES = 2**30   # what an .npz of inputs may inflate to (a 2 MB file of zeros can declare GBs)


def check_npz_members(path: Path, kind: str) -> None:
    """Read every member's declared size (zip directory) and array header (dtype, shape) before any
    array is loaded: more than ``MAX_NPZ_BYTES`` in all, or a header that disagrees with its member,
    is one line."""
    import zipfile

    import numpy as np

    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total += info.file_size
            if total > MAX_NPZ_BYTES:
                raise BadInputError(f"{kind} file {path} inflates to more than {MAX_NPZ_BYTES // 2**20} MiB "
                                    f"(member {info.filename}: {info.file_size / 2**20:.0f} MiB)")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if declared > info.file_size:
                    raise BadInputError(f"{kind} file {path}: member {info.filename} declares {shape} {dtype} "
                                        f"({declared} bytes) but holds {info.file_size}")


def model_size_mb(path: str | Path) -> float:
    """Size of a model on disk in MiB, with its weights beside it: an OpenVINO IR's .bin, an ONNX
    model's external-data files."""
    return model_size_bytes(path) / 2**20


def model_size_bytes(path: str | Path) -> int:
    from edgekit.hashing import model_files

    first, *beside = model_files(path)
    return first.stat().st_size + sum(file.stat().st_size for file in beside if file.is_file())
