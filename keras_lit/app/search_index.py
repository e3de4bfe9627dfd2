"""Text-to-image search over a folder, with the image embeddings on disk.

The locked image tower never changes, so each image is embedded once:
`SearchIndex` keeps a cache file per (model, folder) whose entries are
keyed by the image's path, modification time and size. A restart reuses
every unchanged file's embedding and embeds only new or changed files;
files that fail (not an image, truncated, a decompression bomb) are
remembered with their reason until they change.

Cache files live in `$XDG_CACHE_HOME/keras_lit/app/` (default
`~/.cache/keras_lit/app/`), named `search-<model>-<folder>.npz` after
hashes of the model's fingerprint and the folder's absolute path. They are
written to a temporary file and renamed, so a crash never leaves half a
cache.
"""

import hashlib
import os
import re
import threading
import time

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
CACHE_FORMAT = "keras_lit.app.search_cache.v1"
SAVE_EVERY_SECONDS = 30.0


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "keras_lit", "app")


def short_error(message):
    """The readable part of a model error: the failed assertion's text.

    `"assertion failed: [image_bytes[0]: truncated PNG ...]\\n\\t [[{{node
    ...}}]]"` becomes `"truncated PNG ..."`.
    """
    message = str(message)
    match = re.search(
        r"assertion failed: \[(.*?)\](?:\s*\n|\s*$)", message, re.DOTALL
    )
    if match:
        message = match.group(1)
    message = re.split(r"\n\s*\[\[", message)[0]
    message = re.sub(r"^\w+\[\d+\]: ", "", message.strip())
    return message


class IndexNotReady(Exception):
    """Raised by `search` while the folder is still being embedded."""


class SearchIndex:
    """Embeddings of every image in a folder, searchable by a text embedding.

    Args:
        folder: directory searched recursively for JPEG, PNG, GIF, BMP and
            WebP files (hidden files and folders are skipped).
        embed_images: callable `list of bytes -> float32 [N, D]` (a
            backend's `embed_images`). It raises an exception with
            `status == 400` for bad input; any other error stops indexing.
        model_key: str identifying the model (its fingerprint hash), part of
            the cache key.
        cache_dir: where cache files go. Defaults to `default_cache_dir()`;
            `None` or `""` keeps nothing on disk.
        batch_size: int. Images per `embed_images` call. Defaults to `16`.
        max_file_bytes: int. Larger files are skipped unread. Defaults to
            32 MiB.

    Example:
    >>> index = SearchIndex("photos/", backend.embed_images,
    ...                     backend.model_key())  # doctest: +SKIP
    >>> index.build()["images"]  # doctest: +SKIP
    120
    >>> index.search(text_embedding, top_k=3)[0]["name"]  # doctest: +SKIP
    'beach/dog.jpg'
    """

    def __init__(
        self,
        folder,
        embed_images,
        model_key,
        cache_dir="default",
        batch_size=16,
        max_file_bytes=32 * 1024 * 1024,
    ):
        folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        if not os.path.isdir(folder):
            raise ValueError(f"--images must be a folder. Received: {folder}")
        self.folder = folder
        self.embed_images = embed_images
        self.model_key = str(model_key)
        self.batch_size = int(batch_size)
        self.max_file_bytes = int(max_file_bytes)
        if cache_dir == "default":
            cache_dir = default_cache_dir()
        self.cache_path = None
        if cache_dir:
            folder_key = hashlib.sha256(folder.encode("utf-8")).hexdigest()
            self.cache_path = os.path.join(
                os.path.abspath(os.path.expanduser(cache_dir)),
                f"search-{self.model_key[:16]}-{folder_key[:16]}.npz",
            )
        self._lock = threading.Lock()
        self._thread = None
        self._names = []
        self._name_set = set()
        self._embeddings = np.zeros((0, 0), "float32")
        self._status = {
            "state": "pending",
            "folder": folder,
            "cache_path": self.cache_path,
            "files": 0,
            "done": 0,
            "images": 0,
            "from_cache": 0,
            "embedded": 0,
            "skipped": [],
            "error": None,
            "seconds": None,
        }

    # --- Building ---------------------------------------------------------

    def start(self):
        """Builds (or rebuilds) the index in a background thread."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._build_quietly, name="keras-lit-search", daemon=True
            )
            self._thread.start()

    def wait(self, timeout=None):
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _build_quietly(self):
        try:
            self.build()
        except Exception as error:  # Reported in the page, never fatal.
            self._update(
                state="error", error=f"{type(error).__name__}: {error}"
            )

    def build(self):
        """Embeds the folder (reusing the cache); returns `status()`."""
        start = time.time()
        files = self.scan()
        self._update(
            state="indexing",
            files=len(files),
            done=0,
            from_cache=0,
            embedded=0,
            skipped=[],
            error=None,
        )
        cached = self._load_cache()
        entries = {}  # name -> (mtime_ns, size, embedding or None, reason)
        todo = []
        for name, mtime_ns, size in files:
            hit = cached.get(name)
            if hit is not None and hit[:2] == (mtime_ns, size):
                entries[name] = hit
            elif size > self.max_file_bytes:
                reason = (
                    f"{size / 2**20:.1f} MiB file, over the index's limit of "
                    f"{self.max_file_bytes / 2**20:.0f} MiB"
                )
                entries[name] = (mtime_ns, size, None, reason)
            else:
                todo.append((name, mtime_ns, size))
        self._update(from_cache=len(entries), done=len(entries))
        last_save = time.time()
        for first in range(0, len(todo), self.batch_size):
            batch = todo[first : first + self.batch_size]
            for (name, mtime_ns, size), (embedding, reason) in zip(
                batch, self._embed_batch([name for name, _, _ in batch])
            ):
                entries[name] = (mtime_ns, size, embedding, reason)
            self._update(
                done=len(entries),
                embedded=self._status["embedded"] + len(batch),
            )
            if time.time() - last_save > SAVE_EVERY_SECONDS:
                self._save_cache(entries)  # A long run keeps its progress.
                last_save = time.time()
        self._save_cache(entries)
        names = [name for name, _, _ in files if entries[name][2] is not None]
        skipped = [
            {"name": name, "reason": entries[name][3]}
            for name, _, _ in files
            if entries[name][2] is None
        ]
        embeddings = (
            np.stack([entries[name][2] for name in names]).astype("float32")
            if names
            else np.zeros((0, 0), "float32")
        )
        with self._lock:
            self._names = names
            self._name_set = set(names)
            self._embeddings = embeddings
        return self._update(
            state="ready",
            images=len(names),
            skipped=skipped,
            seconds=round(time.time() - start, 3),
        )

    def scan(self):
        """`[(relative posix name, mtime_ns, size)]`, sorted by name."""
        found = []
        for root, directories, filenames in os.walk(self.folder):
            directories[:] = sorted(d for d in directories if d[0] != ".")
            for filename in filenames:
                if filename[0] == "." or not filename.lower().endswith(
                    IMAGE_SUFFIXES
                ):
                    continue
                path = os.path.join(root, filename)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                name = os.path.relpath(path, self.folder).replace(os.sep, "/")
                found.append((name, stat.st_mtime_ns, stat.st_size))
        return sorted(found)

    def _embed_batch(self, names):
        """`[(embedding or None, reason or None)]`; one bad file skips one."""
        contents = []
        for name in names:
            try:
                with open(self.path(name), "rb") as file:
                    contents.append(file.read())
            except OSError as error:
                contents.append(error)
        readable = [c for c in contents if isinstance(c, bytes)]
        results = {}
        if readable:
            try:
                embeddings = self.embed_images(readable)
                results = dict(zip(map(id, readable), embeddings))
            except Exception as error:
                if getattr(error, "status", None) != 400:
                    raise
                # One bad image fails the whole call: retry one by one.
                for content in readable:
                    try:
                        results[id(content)] = self.embed_images([content])[0]
                    except Exception as error:
                        if getattr(error, "status", None) != 400:
                            raise
                        results[id(content)] = short_error(
                            getattr(error, "message", error)
                        )
        output = []
        for content in contents:
            if isinstance(content, OSError):
                output.append((None, f"unreadable: {content.strerror}"))
                continue
            result = results[id(content)]
            if isinstance(result, str):
                output.append((None, result))
            else:
                output.append((np.asarray(result, "float32"), None))
        return output

    # --- Cache ------------------------------------------------------------

    def _load_cache(self):
        if not self.cache_path or not os.path.isfile(self.cache_path):
            return {}
        try:
            with np.load(self.cache_path, allow_pickle=False) as data:
                if (
                    str(data["format"]) != CACHE_FORMAT
                    or str(data["model_key"]) != self.model_key
                    or str(data["folder"]) != self.folder
                ):
                    return {}
                names = [str(n) for n in data["names"]]
                mtimes = data["mtime_ns"].tolist()
                sizes = data["sizes"].tolist()
                embeddings = data["embeddings"]
                ok = data["ok"].tolist()
                reasons = [str(r) for r in data["reasons"]]
        except (OSError, ValueError, KeyError):
            return {}  # A damaged cache is rebuilt, not fatal.
        cache = {}
        for row, name in enumerate(names):
            embedding = embeddings[row] if ok[row] else None
            cache[name] = (mtimes[row], sizes[row], embedding, reasons[row])
        return cache

    def _save_cache(self, entries):
        if not self.cache_path:
            return
        names = sorted(entries)
        dim = next((len(e[2]) for e in entries.values() if e[2] is not None), 0)
        embeddings = np.zeros((len(names), dim), "float32")
        for row, name in enumerate(names):
            if entries[name][2] is not None:
                embeddings[row] = entries[name][2]
        directory = os.path.dirname(self.cache_path)
        os.makedirs(directory, exist_ok=True)
        temporary = f"{self.cache_path}.{os.getpid()}.{threading.get_ident()}"
        with open(temporary, "wb") as file:
            np.savez(
                file,
                format=np.array(CACHE_FORMAT),
                model_key=np.array(self.model_key),
                folder=np.array(self.folder),
                names=np.array(names, dtype=str),
                mtime_ns=np.array(
                    [entries[n][0] for n in names], dtype="int64"
                ),
                sizes=np.array([entries[n][1] for n in names], dtype="int64"),
                ok=np.array([entries[n][2] is not None for n in names]),
                reasons=np.array(
                    [entries[n][3] or "" for n in names], dtype=str
                ),
                embeddings=embeddings,
            )
        os.replace(temporary, self.cache_path)

    # --- Queries ----------------------------------------------------------

    def status(self):
        with self._lock:
            status = dict(self._status)
            status["skipped"] = list(status["skipped"])
            return status

    def _update(self, **changes):
        with self._lock:
            self._status.update(changes)
            status = dict(self._status)
        return status

    def search(self, query_embedding, top_k=8):
        """The `top_k` images closest to a text embedding (cosine).

        Returns a list of `{"index", "name", "score"}`, best first.
        Raises `IndexNotReady` before the first build finished and
        `ValueError` for an embedding of the wrong size.
        """
        with self._lock:
            names, embeddings = self._names, self._embeddings
            state = self._status["state"]
            if state != "ready" and not names:
                status = dict(self._status)
        if state != "ready" and not names:
            if state == "error":
                raise IndexNotReady(f"Indexing failed: {status['error']}")
            raise IndexNotReady(
                f"Still indexing {self.folder}: {status['done']} of "
                f"{status['files']} images embedded. Try again in a moment."
            )
        query = np.asarray(query_embedding, "float32").reshape(-1)
        if not names:
            return []
        if query.shape[0] != embeddings.shape[1]:
            raise ValueError(
                f"The query embedding has {query.shape[0]} values; the "
                f"indexed images have {embeddings.shape[1]}. Is the page "
                "talking to the same model that indexed the folder?"
            )
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("The query embedding is zero or not finite.")
        image_norms = np.maximum(np.linalg.norm(embeddings, axis=1), 1e-12)
        scores = embeddings @ query / (image_norms * norm)
        order = np.argsort(-scores, kind="stable")[: max(1, int(top_k))]
        return [
            {"index": int(i), "name": names[i], "score": float(scores[i])}
            for i in order
        ]

    def contains(self, name):
        with self._lock:
            return name in self._name_set

    def path(self, name):
        return os.path.join(self.folder, *name.split("/"))
