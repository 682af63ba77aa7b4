"""Where files are: a local folder, or any fsspec URL (``s3://bucket/prefix``, ``gs://``, ``az://``, ``memory://``).

Everything that reads or writes a label map, an output or a manifest goes
through these functions, so a job runs the same on a disk and in a bucket.
A location is a ``Path`` (or a string without ``://``) on this machine, or a
URL string; [`join`][nsegaug.storage.join] keeps that kind.

Object stores have no rename and no append, and this module says how each
guarantee of a local run holds there:

- **whole or nothing**: an object is written with one PUT, which the store
  makes visible whole or not at all, so there are no temp objects to leave
  behind after an interrupt;
- **listing**: streamed page by page (S3: ``list_objects_v2``, 1000 keys a
  page), never held whole in memory;
- **transient faults** (throttling, time-outs, a dropped connection) are
  retried with exponential backoff; a permanent one (no such bucket, access
  denied, a missing object) is a one-line [`StorageError`][nsegaug.errors.StorageError]
  naming the object.

Credentials and endpoints come from the standard places (environment,
profiles, ``AWS_ENDPOINT_URL``), from ``storage_options`` (fsspec's keyword
arguments for the store), which are set per process with [`configure`][nsegaug.storage.configure]
and never printed or recorded, and from a URL's user-info
(``s3://KEY:SECRET@bucket/prefix``), which is taken out of the URL
([`take_credentials`][nsegaug.storage.take_credentials]) before anything records or shows it
([`public`][nsegaug.storage.public]). Options whose names say they are secret ([`is_secret`][nsegaug.storage.is_secret])
are kept apart ([`split_secrets`][nsegaug.storage.split_secrets]), so what is sent to other machines
can leave them out.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

from ._files.local import atomic_writer, sha256_file, write_bytes_atomic
from .errors import StorageError, UsageError, shown_path

Location = Path | str
# Retries of a transient fault: waits of 0.25, 0.5, 1, 2, 4 s, then the error.
RETRIES = 5
FIRST_WAIT_S = 0.25
_options: dict = {}
_cache: Path | None = None
# Secret options given to this process on its own (a Dask worker's plugin), merged into every configure.
_process_secrets: dict = {}
# Parts of an option's name that make it a secret: key, secret, token, password, credentials, auth.
SECRET_WORDS = ("key", "secret", "token", "passw", "credential", "auth")
REDACTED = "<redacted>"


def configure(storage_options: dict | None, cache: os.PathLike | str | None = None) -> None:
    """Set this process's remote file systems' keyword arguments (endpoint, credentials, ...) and, where
    given, a local folder that keeps a copy of every object read (read again from there, not the store)."""
    global _options, _cache
    merged = _merge(storage_options or {}, _process_secrets)
    if merged != _options:
        _options = merged
        _filesystem.cache_clear()
    _cache = Path(cache) if cache is not None else None


def keep_secrets(secrets: dict) -> None:
    """Secret options this process holds whatever a job's options say (set in a Dask worker by its plugin)."""
    global _process_secrets
    _process_secrets = dict(secrets)
    configure(_options)


def is_secret(name: str) -> bool:
    """Whether an option of this name holds a secret (``key``, ``secret``, ``token``, ``password``, ...)."""
    return any(word in str(name).lower() for word in SECRET_WORDS)


def split_secrets(options: dict | None) -> tuple[dict, dict]:
    """``options`` without its secrets, and the secrets alone (nested dicts such as ``client_kwargs`` too)."""
    public_part, secret_part = {}, {}
    for name, value in (options or {}).items():
        if is_secret(name):
            secret_part[name] = value
        elif isinstance(value, dict):
            inner_public, inner_secret = split_secrets(value)
            public_part[name] = inner_public
            if inner_secret:
                secret_part[name] = inner_secret
        else:
            public_part[name] = value
    return public_part, secret_part


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for name, value in extra.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(name), dict)
        merged[name] = _merge(merged[name], value) if both_dicts else value
    return merged


# Stores whose URL names a bucket or container after "//": no port, so any ":" there is user-info's.
BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss")


def _raw_user_info_end(url: str) -> int | None:
    """Where (in ``url``) the user-info ends, for user-info typed with a raw "/" (``s3://KEY:SE/CRET@bucket/x``):
    a URL parser takes ``KEY:SE`` for the host and the rest for the path, and would show the secret; else None.
    Its last "@" ends it (a secret may hold "@" too): a key holding "@" as well is cut away with it, in messages
    only, since such a URL is refused."""
    scheme, _, rest = url.partition("://")
    host, slash, _ = rest.partition("/")
    if not slash or "@" in host or ":" not in host or "@" not in rest:
        return None
    if scheme.lower() not in BUCKET_SCHEMES and host.rpartition(":")[2].isdigit():
        return None  # host:port
    return len(scheme) + 3 + rest.rindex("@")


def _user_info(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user-info, and the user name and password it held (None: none)."""
    end = _raw_user_info_end(url)
    if end is not None:
        raise UsageError(
            f"{public(url)}: cannot read the user-info of this URL: a '/' in a key or secret must be written %2F"
        )
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    info, _, host = parts.netloc.rpartition("@")
    user, colon, password = info.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return clean, urllib.parse.unquote(user) or None, urllib.parse.unquote(password) if colon else None


def url_credentials(url: str) -> tuple[str, dict]:
    """``url`` without user-info, and the user-info as the store's options (S3: ``key`` and ``secret``)."""
    clean, user, password = _user_info(url)
    names = ("key", "secret") if clean.partition("://")[0] in ("s3", "s3a") else ("username", "password")
    return clean, {name: value for name, value in zip(names, (user, password), strict=True) if value is not None}


def take_credentials(location: Location, storage_options: dict | None) -> tuple[Location, dict | None]:
    """``location`` without user-info, and ``storage_options`` with its credentials added; a URL whose
    credentials differ from the options' is a [`UsageError`][nsegaug.errors.UsageError] (this process has one set per
    store)."""
    if not is_url(location):
        return location, storage_options
    clean, credentials = url_credentials(location)
    if not credentials:
        return location, storage_options
    return clean, combined_options(storage_options, credentials, public(location))


def combined_options(given: dict | None, more: dict | None, source: str = "the URLs") -> dict | None:
    """``given`` with ``more`` (credentials taken from ``source``) added; a name both set differently is a
    [`UsageError`][nsegaug.errors.UsageError]: one process has one set of credentials per store."""
    if not more:
        return given
    given = given or {}
    clashing = [name for name, value in more.items() if name in given and given[name] != value]
    if clashing:
        raise UsageError(f"{source}: its credentials differ from the storage options' {clashing[0]}")
    return {**given, **more}


def use_credentials(*locations: Location) -> list[Location]:
    """``locations`` without user-info; the credentials they held join this process's storage options
    ([`configure`][nsegaug.storage.configure]), so that every location of that store is reached with them, as in every
    command."""
    options, cache = settings()
    clean = []
    for location in locations:
        location, options = take_credentials(location, options)
        clean.append(location)
    configure(options, cache)
    return clean


# The user-info of any URL inside a text ("--out=s3://KEY:SECRET@bucket/x"): scheme, then up to the LAST "@" of
# the network location (which ends at "/", "?", "#", a space, or the next URL's scheme), as _user_info reads it: a
# password may hold an "@".
_USER_INFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(?:(?!://)[^/?#\s])*@")


# A URL in a text, as far as the next space: one whose user-info holds a raw "/" (see _raw_user_info_end).
_URL_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def public_text(text: str) -> str:
    """``text`` with the user-info of every URL in it taken out (a command line's argument)."""
    return _USER_INFO.sub(r"\1", _URL_WORD.sub(lambda found: public(found[0]) if _raw(found[0]) else found[0], text))


def _raw(url: str) -> bool:
    return _raw_user_info_end(url) is not None


def public(location: Location) -> Location:
    """``location`` as it may be recorded or shown: a URL without user-info (credentials)."""
    if not is_url(location):
        return location
    end = _raw_user_info_end(location)
    if end is not None:
        return f"{location.partition('://')[0]}://{REDACTED}{location[end:]}"
    return _user_info(location)[0]


def public_record(value):
    """A JSON-like record (dicts, lists, strings) with the user-info of every URL in its strings taken out."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        return {name: public_record(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_record(item) for item in value]
    return value


def settings() -> tuple[dict, Path | None]:
    """This process's [`configure`][nsegaug.storage.configure] arguments, for a process it starts (a DataLoader
    worker)."""
    return dict(_options), _cache


def is_url(location: Location) -> bool:
    return isinstance(location, str) and "://" in location


def as_location(text: str | os.PathLike) -> Location:
    """A command-line or recorded location: a URL without a trailing slash (``s3://b/x/`` is ``s3://b/x``, so a
    resume compares equal), anything else a local ``Path``. ``file://`` is local: atomic writes, link checks and
    temporary-file clean-up are the local disk's, which fsspec's local file system would not give."""
    if isinstance(text, str) and text.startswith("file://"):
        return Path(text[len("file://") :])
    return text.rstrip("/") if is_url(text) else Path(text)


def join(root: Location, key: str) -> Location:
    """``root / key``, keeping the kind: a ``Path`` for a local root, a URL string for a remote one."""
    if is_url(root):
        return f"{root.rstrip('/')}/{key}" if key else root
    return Path(root) / key


def parent(location: Location) -> Location:
    if is_url(location):
        head, _, _ = location.rstrip("/").rpartition("/")
        return head
    return Path(location).parent


def name(location: Location) -> str:
    return location.rstrip("/").rpartition("/")[2] if is_url(location) else Path(location).name


@lru_cache(maxsize=16)
def _filesystem(protocol: str, credentials: tuple = ()):
    try:
        import fsspec

        return fsspec.filesystem(protocol, **{**_options, **dict(credentials)})
    except ImportError as error:
        reason = f"no file system for {protocol}:// ({error}); pip install 'nsegaug[cloud]'"
        raise StorageError(f"{protocol}://", reason) from error
    except ValueError as error:
        raise StorageError(f"{protocol}://", f"unknown kind of URL ({error})") from error


def filesystem(url: str):
    """The fsspec file system of ``url`` (one per protocol and process), and the path inside it."""
    clean, credentials = url_credentials(url)  # a URL typed with credentials (the jobs take them out first)
    protocol, _, path = clean.partition("://")
    fs = _filesystem(protocol, tuple(sorted(credentials.items())))
    return fs, fs._strip_protocol(clean)


# --------------------------------------------------------------------------- faults


def _transient(error: BaseException, location: Location = "") -> bool:
    """Whether retrying may help: throttling, time-outs, dropped connections, a server's 5xx."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    # The location is left out: a key named "500.png" is not a server error.
    text = f"{type(error).__name__} {error}"
    for shown_location in {str(location), str(location).partition("://")[2]}:
        if len(shown_location) > 3:  # a bucket "b" would take every b out of the message
            text = text.replace(shown_location, " ")
    text = text.lower()
    markers = ("slowdown", "throttl", "timeout", "timed out", "connection", "temporar", "503", "500", "reset")
    return isinstance(error, (ConnectionError, TimeoutError)) or any(marker in text for marker in markers)


def with_retries(action: Callable, location: Location, doing: str):
    """``action()``, retried with exponential backoff on a transient fault; a permanent one is a StorageError."""
    wait = FIRST_WAIT_S
    for attempt in range(RETRIES + 1):
        try:
            return action()
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001 - each store raises its own kinds; all become one line
            if attempt < RETRIES and _transient(error, location):
                time.sleep(wait)
                wait *= 2
                continue
            raise _storage_error(error, location, doing) from error
    raise AssertionError("unreachable")


def _storage_error(error: BaseException, location: Location, doing: str) -> StorageError:
    if isinstance(error, OSError) and not is_url(location):
        return StorageError.from_os_error(error, location, doing)
    reason = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FileNotFoundError) and "bucket" not in reason.lower():
        reason = "not found"
    elif isinstance(error, PermissionError):
        reason = f"access denied ({reason})" if "denied" not in reason.lower() else reason
    return StorageError(location, f"{doing}: {reason}" if doing else reason)


# --------------------------------------------------------------------------- files


def read_bytes(location: Location) -> bytes:
    """The bytes of a file or object (a missing one is a `FileNotFoundError`, others a StorageError)."""
    if not is_url(location):
        return Path(location).read_bytes()
    if _cache is not None:
        kept = _cache / hashlib.sha256(location.encode("utf-8")).hexdigest()
        if kept.is_file():
            return kept.read_bytes()
    fs, path = filesystem(location)
    try:
        data = with_retries(lambda: fs.cat_file(path), location, "cannot read")
        if _cache is not None:
            try:
                write_bytes_atomic(kept, data, durable=False)
            except OSError:
                pass  # the cache only saves reads: a full or read-only cache disk must not stop training
        return data
    except StorageError as error:
        if error.reason.endswith("not found"):
            raise FileNotFoundError(2, "not found", str(location)) from error
        raise


def local_copy(location: Location) -> Path:
    """A local file with the bytes of ``location`` (the file itself where it is local), for readers of files."""
    if not is_url(location):
        return Path(location)
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="nsegaug-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / name(location)
    copy.write_bytes(read_bytes(location))
    return copy


def write_bytes(location: Location, data: bytes, durable: bool = True) -> None:
    """Write a file or object whole or not at all: local, a temp file renamed into place; remote, one PUT."""
    if not is_url(location):
        write_bytes_atomic(location, data, durable)
        return
    fs, path = filesystem(location)
    with_retries(lambda: fs.pipe_file(path, data), location, "cannot write")


def remove(location: Location) -> None:
    if not is_url(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)

    def delete():
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass

    with_retries(delete, location, "cannot remove")


def exists(location: Location) -> bool:
    if not is_url(location):
        return Path(location).exists()
    fs, path = filesystem(location)
    return bool(with_retries(lambda: fs.exists(path), location, "cannot look up"))


def is_file(location: Location) -> bool:
    if not is_url(location):
        return Path(location).is_file()
    fs, path = filesystem(location)
    return bool(with_retries(lambda: fs.isfile(path), location, "cannot look up"))


def is_dir(location: Location) -> bool:
    """Whether a folder is there; for a bucket prefix, whether the bucket is (a prefix exists once written to)."""
    if not is_url(location):
        return Path(location).is_dir()
    fs, path = filesystem(location)
    bucket = path.split("/", 1)[0]
    return bool(
        with_retries(lambda: fs.isdir(path) or (path != bucket and fs.exists(bucket)), location, "cannot look up")
    )


def sha256(location: Location) -> str:
    return sha256_file(location) if not is_url(location) else sha256_bytes(read_bytes(location))


# --------------------------------------------------------------------------- listing


def walk(root: Location) -> Iterator[str]:
    """Every file under ``root`` (relative keys, POSIX form), hidden ones too; streamed.

    Local: sorted, links not followed (for the output folder). Remote: the
    store's order (S3: byte order of the keys), page by page.
    """
    if not is_url(root):
        for folder, folders, files in os.walk(root):
            folders.sort()
            relative = Path(folder).relative_to(root)
            for file_name in sorted(files):
                yield (relative / file_name).as_posix()
        return
    fs, path = filesystem(root)
    prefix = path.rstrip("/") + "/"
    for key in _remote_keys(fs, prefix, root):
        yield key[len(prefix) :]


def _remote_keys(fs, prefix: str, root: Location) -> Iterator[str]:
    """Full keys of every object under ``prefix``: S3 page by page; other stores folder by folder."""
    if type(fs).__name__ == "S3FileSystem":
        yield from _s3_keys(fs, prefix, root)
        return
    try:
        walked = fs.walk(prefix.rstrip("/"), detail=False)
        for folder, folders, files in walked:
            folders.sort()
            for file_name in sorted(files):
                yield posixpath.join(folder, file_name)
    except FileNotFoundError:
        return


def _s3_keys(fs, prefix: str, root: Location) -> Iterator[str]:
    from fsspec.asyn import sync

    bucket, _, key_prefix = prefix.partition("/")
    token = None
    while True:
        arguments = {"Bucket": bucket, "Prefix": key_prefix, "MaxKeys": 1000}
        if token:
            arguments["ContinuationToken"] = token
        page = with_retries(lambda a=arguments: sync(fs.loop, fs._call_s3, "list_objects_v2", **a), root, "cannot list")
        for item in page.get("Contents", []):
            yield f"{bucket}/{item['Key']}"
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated"):
            return


def shown(location: Location) -> str:
    """A location as messages show it (one line, without credentials)."""
    return shown_path(str(public(location)))


def write_file(location: Location, data: bytes) -> None:
    """Write a file the user named (a preview, a list, metrics), on a disk or in a bucket, whole or not at all;
    a failure is a [`StorageError`][nsegaug.errors.StorageError] naming ``location``, not the temporary file the bytes
    went to first (a read-only or full disk under it)."""
    try:
        if is_url(location):
            write_bytes(location, data)
        else:
            with atomic_writer(location, own=False) as stream:  # a link the user named is replaced, as before
                stream.write(data)
    except StorageError:
        raise
    except OSError as error:
        raise StorageError.from_os_error(error, location, "cannot write") from error


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
