"""Finding image files in files, folders and glob patterns: each real file once, with a stable key.

    found = discover_images(["photos/", "more/**/*.jpg"])
    found.paths     # ['photos/a.jpg', 'photos/sub/b.png', 'more/x/c.jpg']
    found.keys      # ['photos/a.jpg', 'photos/sub/b.png', 'more/x/c.jpg'] (one input: 'a.jpg', 'sub/b.png')
    found.problems  # [('photos/locked', 'cannot read the folder (Permission denied); skipped'), ...]

A photo's **key** is its path relative to the source root it was found under: the folder given,
the folder of a file given, or a glob's fixed prefix (``more`` for ``more/**/*.jpg``). With
several inputs, each key starts with the root's path relative to the roots' common folder. So
``photos/``, ``./photos`` and ``/abs/photos`` give the same keys, from any working directory.

Folders are walked with symbolic links followed, but each real folder (device, inode) only once:
a link back up the tree (``self -> .``) is a loop, refused and reported; a second way to a folder
already searched is searched once. A real file reached twice (a link, a hard link, two
spellings) is listed once. Folders that cannot be read are reported, never silently left out.
Hidden names (starting with ``.``) are skipped inside folders, as ``glob`` does.
No TensorFlow here: ``--help`` and a missing input answer fast.

URLs (``gs://bucket/photos``, ``gs://bucket/photos/**/*.jpg``: :mod:`koalarization.storage`, through
``tf.io.gfile``) are searched the same way, by one walk of the folder or the glob's fixed prefix
(one listing per folder and one size request per object): keys relative to the root, hidden names
skipped; an object store has no links, so each object is its own photo. URLs and local paths are
not mixed in one search.
"""

import dataclasses
import glob
import os
import re
import stat as stat_module
import sys
import types

from koalarization import storage

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class Discovery:
    """What :func:`discover_images` found. ``paths[i]`` is a path to open, ``keys[i]`` its key,
    ``sizes[i]`` its size in bytes; ``problems``: ``(path, reason)`` for what was refused or
    unreadable; ``same_file``: ``(key, path kept)`` for a real file reached twice; ``others``:
    files passed over for their extension."""

    inputs: list
    extensions: tuple
    paths: list = dataclasses.field(default_factory=list)
    keys: list = dataclasses.field(default_factory=list)
    sizes: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    same_file: list = dataclasses.field(default_factory=list)
    others: list = dataclasses.field(default_factory=list)

    def why_empty(self):
        """One line that says why nothing was found (for an empty result)."""
        looked = f"looked for {', '.join(self.extensions)}"
        if self.others:
            shown = ", ".join(os.path.basename(p) for p in self.others[:3])
            more = f" and {len(self.others) - 3} more" if len(self.others) > 3 else ""
            looked += f"; found only other files ({shown}{more})"
        elif not self.problems:
            looked += "; the folders are empty"
        if self.problems:
            path, reason = self.problems[0]
            looked += f"; {path}: {reason}"
        return f"{' '.join(map(str, self.inputs))}: no image files found ({looked})"


def _glob_root(pattern):
    """The fixed prefix of a glob pattern (the folders before the first wildcard), and the rest."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            root = os.sep.join(parts[:i])
            return (root or (os.sep if pattern.startswith(os.sep) else "")), parts[i:]  # "": the working folder
    return pattern, []


def _component_regex(part):
    """One glob component (``*.jpg``, ``n0?44*``, ``[ab]*``) as a regex that never crosses a ``/``."""
    out, i = "" if part.startswith(".") else "(?!\\.)", 0  # like glob: '*' does not match hidden names
    while i < len(part):
        char = part[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and "]" in part[i + 2 :]:
            end = part.index("]", i + 2)
            body = part[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out += f"(?!/)[{body.replace(chr(92), chr(92) * 2)}]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def _pattern_regex(parts):
    """Regex for a relative path (``/``-separated) matching the glob components ``parts``; ``**``
    matches any number of folders (none included), as ``glob(recursive=True)`` does."""
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += "(?:[^/.][^/]*/)*" + ("[^/.][^/]*" if last else "")
        else:
            regex += _component_regex(part) + ("" if last else "/")
    return re.compile(f"(?s:{regex})\\Z")


def _identity(st):
    return (st.st_dev, st.st_ino)


class _Walker:
    def __init__(self, found):
        self.found = found
        self.folders = {}  # (dev, ino) -> the path it was first searched under
        self.files = {}  # (dev, ino) -> the path kept

    def add_file(self, path, key, st):
        ident = _identity(st)
        if ident in self.files:
            self.found.same_file.append((key, self.files[ident]))
            return
        self.files[ident] = path
        self.found.paths.append(path)
        self.found.keys.append(key)
        self.found.sizes.append(st.st_size)

    def walk(self, root, key_prefix, keep, max_depth=None):
        """Search ``root``; ``keep(relative path)`` says which files count."""
        try:
            st = os.stat(root or ".")
        except OSError as error:
            self.found.problems.append((root, f"cannot read the folder ({error.strerror})"))
            return
        if _identity(st) in self.folders:
            return  # the same folder given twice (two spellings): searched once
        self.folders[_identity(st)] = root
        stack = [(root, "", max_depth, frozenset([_identity(st)]))]  # no recursion: any depth
        while stack:
            stack.extend(reversed(self._search(*stack.pop(), key_prefix, keep)))

    def _search(self, folder, relative, depth_left, ancestors, key_prefix, keep):
        """List the files of one folder; return its subfolders still to search, in name order."""
        try:
            with os.scandir(folder or ".") as entries:
                entries = sorted(entries, key=lambda e: (e.is_symlink(), e.name))  # a file before a link to it
        except OSError as error:
            self.found.problems.append((folder, f"cannot read the folder ({error.strerror}); skipped"))
            return []
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = os.path.join(folder, entry.name) if folder else entry.name
            rel = f"{relative}{entry.name}"
            try:
                st = os.stat(path)  # follows links
            except OSError as error:
                reason = "broken symbolic link" if entry.is_symlink() else f"cannot read ({error.strerror})"
                self.found.problems.append((path, f"{reason}; skipped"))
                continue
            if stat_module.S_ISDIR(st.st_mode):
                if depth_left == 0:
                    continue
                ident = _identity(st)
                if ident in ancestors:
                    self.found.problems.append((path, "a link back to a folder above it (a loop); not followed"))
                    continue
                if ident in self.folders:
                    continue  # reached again through a link: its files are already listed
                self.folders[ident] = path
                next_depth = None if depth_left is None else depth_left - 1
                subfolders.append((path, rel + "/", next_depth, ancestors | {ident}))
            elif stat_module.S_ISREG(st.st_mode):
                if keep(rel):
                    self.add_file(path, key_prefix + rel, st)
                elif not rel.lower().endswith(self.found.extensions):
                    self.found.others.append(path)
        return subfolders


def discover_images(inputs, extensions=IMAGE_EXTENSIONS):
    """Expand files, folders (recursively) and glob patterns into a :class:`Discovery`.

    Files named explicitly are kept whatever their extension (so a broken one gets reported);
    inside folders and globs only ``extensions`` count. Raises ``FileNotFoundError`` for an input
    that is no file, no folder and no pattern with a fixed prefix that exists.
    """
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found = Discovery(inputs=[os.fspath(i) for i in inputs], extensions=tuple(extensions))
    urls = [storage.is_url(item) for item in found.inputs]
    if any(urls):
        if not all(urls):
            raise FileNotFoundError(f"{found.inputs[urls.index(False)]}: a local path among URLs; search one kind at a time")
        return _discover_urls(found)
    plans = []  # (input, kind, root, glob components)
    for item in found.inputs:
        if os.path.isfile(item):
            plans.append((item, "file", os.path.dirname(item) or ".", None))
        elif os.path.isdir(item):
            plans.append((item, "folder", item, None))
        elif glob.has_magic(item) and os.path.isdir(_glob_root(os.path.normpath(item))[0] or "."):
            plans.append((item, "glob", *_glob_root(os.path.normpath(item))))
        elif os.path.exists(item):  # a FIFO, a device, a socket: nothing to read an image from
            raise FileNotFoundError(f"{item}: not a regular file or folder (a pipe, device or socket)")
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or matching glob")
    roots = [os.path.realpath(root or ".") for _, _, root, _ in plans]
    common = os.path.commonpath(roots) if len(set(roots)) > 1 else None
    walker = _Walker(found)
    is_image = lambda rel: rel.lower().endswith(found.extensions)  # noqa: E731
    for (item, kind, root, parts), real_root in zip(plans, roots):
        prefix = "" if common is None else os.path.relpath(real_root, common).replace(os.sep, "/") + "/"
        prefix = "" if prefix == "./" else prefix
        if kind == "file":
            walker.add_file(item, prefix + os.path.basename(item), os.stat(item))
        elif kind == "folder":
            walker.walk(root, prefix, is_image)
        else:
            regex = _pattern_regex(parts)
            before = (len(found.paths), len(found.same_file), len(found.others), len(found.problems))
            walker.walk(root, prefix, lambda rel: bool(regex.match(rel)) and is_image(rel), None if "**" in parts else len(parts) - 1)
            after = (len(found.paths), len(found.same_file), len(found.problems))
            matched_others = any(regex.match(os.path.relpath(p, root).replace(os.sep, "/")) for p in found.others[before[2]:])
            if after == (before[0], before[1], before[3]) and not matched_others:
                raise FileNotFoundError(f"{item}: no such file, folder or matching glob")
    return found


def _discover_urls(found):
    """:func:`discover_images` of URL inputs (see the module): one walk of each root."""
    plans = []
    for item in found.inputs:
        root, parts = _glob_root(item.rstrip("/")) if glob.has_magic(item) else (item.rstrip("/"), None)
        if parts is None and storage.isfile(root):
            plans.append((item, root.rsplit("/", 1)[0], "file"))
        elif storage.isdir(root):
            plans.append((item, root, parts))
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or matching glob")
    roots = [root.split("/") for _, root, _ in plans]
    common = len(os.path.commonprefix(roots)) if len(set(map(tuple, roots))) > 1 else None
    walker = _Walker(found)
    for (item, root, parts), split_root in zip(plans, roots):
        prefix = "" if common is None else "".join(f"{part}/" for part in split_root[common:])
        if parts == "file":
            walker.add_file(item, prefix + item.rsplit("/", 1)[1], _url_stat(item))
            continue
        keep = _pattern_regex(parts).match if parts else (lambda rel: True)
        before = len(found.paths) + len(found.others)
        for folder, subfolders, names in storage.walk(root):
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in sorted(n for n in names if not n.startswith(".")):
                path = f"{folder}/{name}"
                rel = storage.relpath(path, root)
                if keep(rel) and rel.lower().endswith(found.extensions):
                    walker.add_file(path, prefix + rel, _url_stat(path))
                elif not rel.lower().endswith(found.extensions) and (not parts or keep(rel)):
                    found.others.append(path)
        if parts and len(found.paths) + len(found.others) == before:
            raise FileNotFoundError(f"{item}: no such file, folder or matching glob")
    return found


def _url_stat(path):
    """What :class:`_Walker` needs of an object: an identity (its URL) and its size."""
    return types.SimpleNamespace(st_dev="url", st_ino=path, st_size=storage.getsize(path))


def find_images(inputs, extensions=IMAGE_EXTENSIONS, warn=None, others=None):
    """The image paths of :func:`discover_images`, each real file once; every problem (an
    unreadable folder, a loop refused, a broken link) is passed to ``warn`` as one line
    ``"PATH: reason"`` (default: printed to stderr as ``warning: ...``). ``others``: a list that
    gets the files passed over for their extension."""
    found = discover_images(inputs, extensions)
    if others is not None:
        others.extend(found.others)
    for path, reason in found.problems:
        line = f"{path}: {reason}"
        if warn is None:
            print(f"warning: {line}", file=sys.stderr)
        else:
            warn(line)
    return sorted(found.paths)
