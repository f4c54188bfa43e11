"""One set of file operations for local paths and ``scheme://`` URLs (gs://, s3://, hdfs://, ram://).

    storage.exists("gs://bucket/records/manifest.json")   # tf.io.gfile
    storage.exists("records/manifest.json")                # os.path, as before

A path with a scheme goes through TensorFlow's filesystems (``tf.io.gfile``), every other path
through ``os``, ``shutil`` and ``open`` exactly as before: scheme-less paths keep their fsyncs,
``flock`` locks and atomic renames (the callers keep those on ``os``). TensorFlow is imported on
the first URL only, so a command with local paths pays nothing for this module.

Which schemes work is TensorFlow's to say: ``gs://`` is built in (credentials as Google's
libraries find them); ``s3://`` and ``hdfs://`` are not in TensorFlow 2.x's own build ("File
system scheme 's3' not implemented") and need ``pip install tensorflow-io`` (imported here, when
installed, on the first such URL), and for HDFS Hadoop's ``libhdfs.so`` (``HADOOP_HDFS_HOME``,
``CLASSPATH``). ``ram://`` is TensorFlow's in-process filesystem, which the tests use (it lives in
one process: Beam's DirectRunner must run in memory to share it; writing ``"wb"`` over an existing
ram:// object appends to it, so every write here goes to a new temporary name first).

Object stores have no folders and no atomic rename: :func:`replace` of a GCS object is a copy then
a delete of that one object, so a reader sees the old object or the whole new one, never half of
it; folders are never renamed here (``ram://`` cannot rename one either). Every TensorFlow error of
a URL operation is an ``OSError`` here (``FileNotFoundError`` for a missing object), as ``os``
raises, so callers catch one kind.
"""

import builtins
import contextlib
import errno
import os
import re
import shutil

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path):
    """True for ``scheme://...`` (a string); False for every local path."""
    return isinstance(path, str) and bool(_SCHEME.match(path))


def _tf(path=""):
    from koalarization import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    if path.startswith(("s3://", "hdfs://")):
        with contextlib.suppress(ImportError):
            import tensorflow_io  # noqa: F401  (registers s3:// and hdfs:// with tf.io.gfile)
    return tf


WRITE_ERRORS = ("ResourceExhaustedError", "PermissionDeniedError", "UnknownError", "FailedPreconditionError", "DataLossError")


@contextlib.contextmanager
def os_errors(path, only=None):
    """Inside: an error of TensorFlow's file operations or writers (``gfile``, ``TFRecordWriter``,
    ``tf.saved_model.save``) becomes an ``OSError`` naming ``path``: ``ENOSPC`` for a full disk,
    ``EACCES``, ``ENOENT`` (``FileNotFoundError``) for a missing file, else ``EIO``, as Python's own
    file operations raise. ``only``: the names of the ``tf.errors`` caught (default: all of them);
    ``WRITE_ERRORS`` for a local writer, around which only the writes go: an out-of-memory error of
    a network is a ``ResourceExhaustedError`` too, and must not read as a full disk."""
    tf = _tf()
    try:
        yield
    except tf.errors.OpError as error:
        if only is not None and not isinstance(error, tuple(getattr(tf.errors, name) for name in only)):
            raise
        message = (error.message or type(error).__name__).strip().splitlines()[0]
        if isinstance(error, tf.errors.UnimplementedError) and "scheme" in message:
            message += " (s3:// and hdfs:// need pip install tensorflow-io)"
        if isinstance(error, tf.errors.NotFoundError):
            raise FileNotFoundError(errno.ENOENT, message, path) from None
        if isinstance(error, tf.errors.ResourceExhaustedError) or "No space left" in message:
            code = errno.ENOSPC
        else:
            code = errno.EACCES if isinstance(error, tf.errors.PermissionDeniedError) else errno.EIO
        raise OSError(code, message, path) from None


def _gfile(path, name, *args, **kwargs):
    with os_errors(path):
        return getattr(_tf(path).io.gfile, name)(path, *args, **kwargs)


def exists(path):
    return _gfile(path, "exists") if is_url(path) else os.path.exists(path)


def isdir(path):
    return _gfile(path, "isdir") if is_url(path) else os.path.isdir(path)


def isfile(path):
    return (exists(path) and not isdir(path)) if is_url(path) else os.path.isfile(path)


def getsize(path):
    return _gfile(path, "stat").length if is_url(path) else os.path.getsize(path)


def makedirs(path):
    """Make the folder ``path`` and its parents (nothing when it is there)."""
    return _gfile(path, "makedirs") if is_url(path) else os.makedirs(path, exist_ok=True)


def listdir(path):
    """The names in the folder ``path`` (an object store's ``sub/`` without its slash)."""
    return [name.rstrip("/") for name in _gfile(path, "listdir")] if is_url(path) else os.listdir(path)


def remove(path):
    return _gfile(path, "remove") if is_url(path) else os.remove(path)


def replace(source, target):
    """Rename the file ``source`` to ``target``, replacing it (``os.replace``; on an object store a
    copy then a delete of one object: see the module's docstring)."""
    return _gfile(source, "rename", target, overwrite=True) if is_url(source) else os.replace(source, target)


def rmtree(path):
    """Remove the folder ``path`` and all below it; nothing when it is not there, errors ignored."""
    if not is_url(path):
        return shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        if exists(path):
            _gfile(path, "rmtree")


def remove_any(path):
    """Remove the file or the whole folder ``path`` (a link to a folder is a file here)."""
    if is_url(path) and isdir(path):
        _gfile(path, "rmtree")
    elif os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        remove(path)


def walk(top):
    """``(folder, subfolder names, file names)`` top-down below the URL ``top``, as ``os.walk``
    (the subfolder list may be pruned in place); nothing for a missing one."""
    for folder, subfolders, names in _gfile(top, "walk"):
        subfolders[:] = [name.rstrip("/") for name in subfolders]
        yield folder.rstrip("/"), subfolders, names


def real(path):
    """A name to compare paths by: a URL as it is (no trailing slash), a local path through its links."""
    return path.rstrip("/") if is_url(path) else os.path.realpath(path)


def relpath(path, start):
    """``path`` relative to the folder ``start`` (``os.path.relpath``; for URLs, what follows ``start/``)."""
    return path[len(start.rstrip("/")) + 1 :] if is_url(path) else os.path.relpath(path, start)


class _Object:
    """A ``tf.io.gfile.GFile`` whose errors are ``OSError``s (:func:`os_errors`), as ``open()``'s are."""

    def __init__(self, path, mode):
        self.path = path
        self.file = _gfile(path, "GFile", mode)

    def __getattr__(self, name):
        attribute = getattr(self.file, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with os_errors(self.path):
                return attribute(*args, **kwargs)

        return call

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open(path, mode="rb"):  # noqa: A001  (the builtin, for URLs too)
    """``open(path, mode)``; a URL's file object raises ``OSError``s too (a missing object on its first read)."""
    return _Object(path, mode) if is_url(path) else builtins.open(path, mode)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
