"""Files that survive a kill, and output paths checked before any work.

One helper for every command (builder, train, colorize, evaluate, export, demo), so a kill at any
instant, a second writer or a hostile path behaves the same everywhere. Pure Python: no
TensorFlow, so commands can check their paths before the slow imports.

- :func:`atomic_path` / :func:`write_bytes` / :func:`write_text` / :func:`write_json`: write to
  ``.NAME.tmp-PID-HOST`` in the same folder, flush and fsync, then ``os.replace``: the final name
  holds the old file or the whole new one, never half of one.
- :func:`read_json`: a damaged or missing state file is a :class:`DamagedFileError` naming it.
- :func:`save_two_generations` / :func:`load_newest_good`: state that must never be lost keeps
  the previous good copy (``NAME`` and ``NAME.prev``) with a SHA-256 beside each; a reader falls
  back to the previous copy, saying which file was damaged.
- :class:`LockedError`: a folder in use, raised by :class:`koalarization.locks.DirLock`.
- :func:`replace_folder` / :func:`recover_folder`: a finished folder (a SavedModel) takes its final
  name in one atomic swap (Linux), or in two renames, the old one set aside first and put back if a
  kill comes between.
- :func:`clean_temporaries`: leftovers of killed writers (ours and Keras'/TF's) removed at the
  next run.
- :func:`check_output_dir`: an output folder that is a file, not writable, under a file, or the
  same real folder as an input, refused in one line before any model is loaded.

Paths may be ``scheme://`` URLs where a command says so (the Beam builder, records, colorize):
:mod:`koalarization.storage` sends those to ``tf.io.gfile`` (imported then only), local paths to ``os``.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket

from koalarization import errors, storage

TEMP_MARK = ".tmp-"  # every temporary name contains this: ".NAME.tmp-PID-HOST"


class SafeIOError(errors.KoalarizationError):
    """A problem with a file or folder, ``str()`` a single line that names it."""


class DamagedFileError(SafeIOError, errors.DamagedError):
    pass


class OutputPathError(SafeIOError, errors.OutputError):
    pass


class LockedError(SafeIOError, errors.InUseError):
    pass


def _host():
    return socket.gethostname()


def temporary_name(path):
    """``dir/.NAME.tmp-PID-HOST``: hidden, in the same folder (so the rename is atomic)."""
    folder, name = os.path.split(path if storage.is_url(path) else os.path.abspath(path))
    return os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{_host()}")


def _fsync_dir(folder):
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write ``path``'s new content to; renamed over ``path`` when the
    block ends without an error, removed otherwise. The writer inside may be any library
    (h5py, Keras, TF's TFRecordWriter) as long as it writes to the yielded path. For a URL
    (:mod:`koalarization.storage`) the rename is the store's: per object, never half of one."""
    tmp = temporary_name(path)
    try:
        yield tmp
        if storage.is_url(path):
            return storage.replace(tmp, path)
        with contextlib.suppress(OSError, IsADirectoryError):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        with contextlib.suppress(OSError):
            storage.remove(tmp)
        raise


def write_bytes(path, data):
    with atomic_path(path) as tmp, storage.open(tmp, "wb") as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8", "backslashreplace"))  # a file name's undecodable bytes as \xNN


def shown(name):
    """A path or key as printable text: a file name's bytes that are not UTF-8 (kept by Python as
    surrogate escapes, which printing, plotting or encoding refuse) shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace") if isinstance(name, str) else str(name)


def write_json(path, payload):
    """JSON with a trailing newline, written atomically."""
    write_text(path, json.dumps(payload, indent=2) + "\n")


def read_json(path, what="file", kind=None):
    """Parse ``path``; a missing, truncated or non-JSON file, or (with ``kind``, e.g. ``dict``) JSON of
    another shape, raises :class:`DamagedFileError` ``"PATH: damaged WHAT (reason); ..."``."""
    try:
        payload = json.loads(storage.read_bytes(path).decode("utf-8"))
        if kind is not None and not isinstance(payload, kind):
            shape = {dict: "an object", list: "a list"}.get(kind, kind.__name__)
            raise DamagedFileError(f"{path}: damaged {what} (JSON {type(payload).__name__}, expected {shape})")
        return payload
    except DamagedFileError:  # the shape check above (a ValueError too, as every DamagedError)
        raise
    except FileNotFoundError:
        raise DamagedFileError(f"{path}: {what} not found") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DamagedFileError(f"{path}: damaged {what} ({type(error).__name__}: {str(error)[:120]})") from None
    except OSError as error:
        raise DamagedFileError(f"{path}: cannot read {what} ({error.strerror or error})") from None


# -- whole folders (a SavedModel) ------------------------------------------------------------------
ASIDE_MARK = ".aside-"  # the folder a replacement moved out of the way: ".NAME.aside-PID-HOST"


def _owned_by_live_other(owner):
    """``PID-HOST`` of a process on this host that is still running and is not this one."""
    pid, _, host = owner.partition("-")
    return host == _host() and pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))


def _exchange(a, b):
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): True
    when done, False where the C library or the filesystem cannot (the caller renames twice)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(os.path.abspath(a)), at_cwd, os.fsencode(os.path.abspath(b)), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), b)


def _remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def replace_folder(staging, final):
    """Move the finished folder ``staging`` (named by :func:`temporary_name`) to ``final``, replacing
    whatever is there. Where Linux can swap two names atomically, ``final`` always holds the old
    folder or the new one, and the old one, left under ``staging``'s name, is then deleted (a kill
    meanwhile leaves it to :func:`clean_temporaries`). Elsewhere the old one is first set aside as
    ``.NAME.aside-PID-HOST``, which :func:`recover_folder` puts back if a kill comes before the new
    one takes the name; once it has, the old one is renamed to a temporary name before deletion, so
    only a whole folder is ever put back."""
    folder, name = os.path.split(os.path.abspath(final))
    if os.path.lexists(final) and _exchange(staging, final):
        _fsync_dir(folder)
        _remove_tree(staging)  # the old one
        return
    aside = None
    if os.path.lexists(final):
        aside = os.path.join(folder, f".{name}{ASIDE_MARK}{os.getpid()}-{_host()}")
        os.replace(final, aside)
    try:
        os.replace(staging, final)
    except BaseException:
        if aside is not None:
            os.replace(aside, final)
        raise
    _fsync_dir(folder)
    if aside is not None:
        doomed = temporary_name(final)  # staging's name, free again
        os.replace(aside, doomed)
        _remove_tree(doomed)


def recover_folder(final):
    """Undo what a killed :func:`replace_folder` left: with ``final`` missing, the folder it had set
    aside goes back (its newest, when several); other set-aside folders of stopped processes are
    removed. Returns the name put back, or None."""
    folder, name = os.path.split(os.path.abspath(final))
    prefix = f".{name}{ASIDE_MARK}"
    try:
        asides = [n for n in os.listdir(folder) if n.startswith(prefix) and not _owned_by_live_other(n[len(prefix):])]
    except OSError:
        return None
    asides.sort(key=lambda n: os.path.getmtime(os.path.join(folder, n)), reverse=True)
    restored = None
    if asides and not os.path.lexists(final):
        restored = asides.pop(0)
        os.replace(os.path.join(folder, restored), final)
        _fsync_dir(folder)
    for n in asides:
        _remove_tree(os.path.join(folder, n))
    return restored


# -- two generations with checksums ---------------------------------------------------------------
def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sum_path(path):
    return path + ".sha256"


def save_two_generations(path, write):
    """Write a new generation of ``path`` with ``write(tmp_path)``, keeping the current one as
    ``path.prev``; each generation has its SHA-256 in ``NAME.sha256``. A kill at any instant leaves
    at least one generation whose checksum matches: the new one is whole and checked in as
    ``path.next`` (file, then checksum) before anything else moves, and stays so until the single
    rename that makes it ``path`` (whose checksum was written just before)."""
    with atomic_path(path + ".next") as tmp:
        write(tmp)
    digest = sha256_of(path + ".next")
    write_text(_sum_path(path + ".next"), digest + "\n")  # .next is now a good generation
    if os.path.exists(path) and verify(path):
        os.replace(path, path + ".prev")
        os.replace(_sum_path(path), _sum_path(path + ".prev"))
    write_text(_sum_path(path), digest + "\n")  # an old unchecked `path` no longer matches it
    os.replace(path + ".next", path)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_sum_path(path + ".next"))


def verify(path):
    """True when ``path`` exists and matches its recorded SHA-256."""
    try:
        with open(_sum_path(path)) as f:
            expected = f.read().strip()
        return sha256_of(path) == expected
    except OSError:
        return False


def load_newest_good(path, load, warn=print):
    """``load(p)`` on the newest generation of ``path`` that passes its checksum and loads;
    returns ``(result, used_path)`` or ``(None, None)`` when there is none. Each damaged
    generation is reported in one line through ``warn``."""
    for candidate in (path + ".next", path, path + ".prev"):  # newest first
        if not os.path.exists(candidate):
            continue
        if candidate.endswith(".next") and not verify(candidate):
            continue  # a new generation killed before its checksum was written: not one yet
        if not verify(candidate):
            warn(f"{candidate}: damaged (checksum mismatch or missing); using the previous good copy")
            continue
        try:
            return load(candidate), candidate
        except Exception as error:  # noqa: BLE001  (any loader error means: not usable)
            warn(f"{candidate}: does not load ({type(error).__name__}: {str(error)[:120]}); using the previous good copy")
    return None, None


# -- leftovers of killed writers --------------------------------------------------------------------
def clean_temporaries(folder, extra_patterns=(), targets=None):
    """Remove temporary files of killed writers in ``folder`` (not recursive): ours
    (``*.tmp-PID-HOST``) and names matching ``extra_patterns`` (compiled regexes). Files of a
    process that is still running on this host are kept. ``targets`` (a compiled regex) limits
    ours to the temporaries of final names it matches (e.g. one worker's files in a folder that
    several workers share). Returns the removed names."""
    removed = []
    try:
        names = storage.listdir(folder)
    except OSError:
        return removed
    for name in names:
        ours = TEMP_MARK in name
        if not (ours or any(p.match(name) for p in extra_patterns)):
            continue
        if ours and targets is not None and not targets.match(name.rsplit(TEMP_MARK, 1)[0][1:]):
            continue
        if ours:
            owner = name.rsplit(TEMP_MARK, 1)[1]
            pid = owner.partition("-")[0]
            if _owned_by_live_other(owner) or (pid.isdigit() and int(pid) == os.getpid()):
                continue
        with contextlib.suppress(OSError):
            storage.remove_any(os.path.join(folder, name))
            removed.append(name)
    return removed


# -- processes ------------------------------------------------------------------------------------
def _alive(pid):
    """Whether process ``pid`` (on this host) still runs: a killed one its parent has not reaped yet
    (a zombie, state ``Z`` in ``/proc/PID/stat``) runs no more and holds nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[:1] != [b"Z"]  # "PID (COMMAND) STATE ...": the name may hold ")"
    except (OSError, IndexError):  # no /proc (not Linux): kill(pid, 0) is all we can tell
        return True


# -- output paths -----------------------------------------------------------------------------------
def _realpath(path):
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def check_output_dir(path, inputs=(), what="output folder", create=True):
    """Check (and with ``create`` make) the folder ``path`` that a command writes into.

    Raises :class:`OutputPathError` with one line when it is an existing file, lies under a file,
    cannot be created or written, or is (through any symlinks) the same folder as one of the
    folders in ``inputs``. Returns the real path. A URL (:mod:`koalarization.storage`) is checked
    through ``tf.io.gfile``: :func:`_check_output_url`.
    """
    if storage.is_url(path):
        return _check_output_url(path, inputs, what, create)
    real = _realpath(path)
    if os.path.exists(real) and not os.path.isdir(real):
        raise OutputPathError(f"{path}: is an existing file, not a folder; choose another {what}")
    probe = real
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutputPathError(f"{path}: cannot be a folder, {probe} is a file")
    for item in inputs:
        item_real = _realpath(item)
        if os.path.isdir(item_real) and (real == item_real):
            raise OutputPathError(f"{path}: is the input folder {item}; outputs would mix with inputs, choose another {what}")
    if create:
        try:
            os.makedirs(real, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f"{path}: cannot create the {what} ({_reason(error)})") from None
    if os.path.isdir(real) and not os.access(real, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: the {what} is not writable")
    if os.path.isdir(real):
        try:  # access() says yes to root on read-only file systems: really try
            with atomic_path(os.path.join(real, ".write-test")) as tmp, open(tmp, "wb"):
                pass
            os.remove(os.path.join(real, ".write-test"))
        except OSError as error:
            raise OutputPathError(f"{path}: cannot write in the {what} ({_reason(error)})") from None
    return real


def _check_output_url(path, inputs, what, create):
    """:func:`check_output_dir` of a URL: not an existing object, not an input, made (an object
    store's folder is only a name), and writable: a test object is written and removed."""
    real = storage.real(path)
    if any(storage.real(item) == real for item in inputs if storage.is_url(item)):
        raise OutputPathError(f"{path}: is the input folder; outputs would mix with inputs, choose another {what}")
    try:
        if storage.isfile(real):
            raise OutputPathError(f"{path}: is an existing file, not a folder; choose another {what}")
        if create or storage.isdir(real):
            storage.makedirs(real)
            write_bytes(os.path.join(real, ".write-test"), b"")
            storage.remove(os.path.join(real, ".write-test"))
    except OutputPathError:
        raise
    except OSError as error:
        raise OutputPathError(f"{path}: cannot write in the {what} ({_reason(error)})") from None
    return real


@contextlib.contextmanager
def removed_if_left_empty(path):
    """Inside: a command that may create the folder ``path`` (and its missing parents). If the block
    fails (a model that cannot be loaded, Ctrl-C...) the folders it created are removed again while
    they are still empty: a failed command leaves no trace behind."""
    missing, probe = [], _realpath(path)
    while not storage.is_url(path) and not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        missing.append(probe)  # deepest first
        probe = os.path.dirname(probe)
    try:
        yield
    except BaseException:
        for folder in missing:
            try:
                os.rmdir(folder)  # only an empty folder goes
            except OSError:
                break
        raise


def same_file(a, b):
    """True when ``a`` and ``b`` are the same file on disk (through any symlinks or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _reason(error):
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "no space left on the device"
    return (error.strerror or str(error)) if isinstance(error, OSError) else str(error)


def describe_os_error(path, error):
    """One line for an OSError met while writing ``path`` (disk full, permission, ...)."""
    return f"{path}: {_reason(error)}"


def what_to_do(error):
    """The first words of the advice after a write error: "make room" for a full disk, else "fix that"."""
    return "make room" if isinstance(error, OSError) and error.errno == errno.ENOSPC else "fix that"


def tensorflow_write_errors(path):
    """Inside: an error of TensorFlow's own writers becomes an ``OSError`` naming ``path``
    (:func:`koalarization.storage.os_errors`: only its ``WRITE_ERRORS`` for a local path, every one for a URL)."""
    return storage.os_errors(path, None if storage.is_url(path) else storage.WRITE_ERRORS)
