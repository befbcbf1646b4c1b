"""Filesystem URIs for `--input` and `--output` (s3://, gs://, hdfs://, file://), resolved by
pyarrow's filesystems.

A local path stays a local path (the code paths of a plain folder are unchanged); `file://` is
turned into one. Only the schemes below are accepted, and a URI that carries credentials
(`s3://KEY:SECRET@bucket`, `?secret_key=...`) is refused: URIs are printed in progress lines and
saved in config.yaml and runs.jsonl, so secrets must come from the standard places instead
(environment, AWS config/profile, pod identity), which the filesystem reads itself.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from quasar_dist.util.errors import InputError, first_line

SCHEMES = ("s3", "gs", "hdfs", "file")
URI_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# pyarrow's from_uri options that hold secrets; the others (region, endpoint_override, scheme...) are fine
SECRET_OPTIONS = {"access_key", "secret_key", "session_token", "password", "kerb_ticket", "token"}
CREDENTIAL_ADVICE = "credentials come from the environment, the AWS config/profile or pod identity"


def is_uri(path: str | None) -> bool:
    """True for `scheme://...` other than file:// (which is a local path)."""
    return bool(path) and bool(URI_PATTERN.match(path)) and not path.lower().startswith("file://")


def local_path(path: str | None) -> str | None:
    """`file:///x/y` -> `/x/y`; anything else unchanged (checked by check_uri when a URI)."""
    if path and path.lower().startswith("file://"):
        parts = urlsplit(path)
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"{path}: a file:// URI names a local path (file:///path), not host {parts.netloc!r}")
        return unquote(parts.path) or "/"
    return path


def check_uri(uri: str) -> str:
    """The URI if its scheme is supported and it carries no credentials; else a one-line error."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InputError(f"{uri}: unsupported URI scheme {scheme!r} (use a local path or one of "
                         f"{', '.join(s + '://' for s in SCHEMES)})")
    if "@" in parts.netloc:
        raise InputError(f"{scheme}://{parts.netloc.rsplit('@', 1)[1]}{parts.path}: credentials in the URI are refused; "
                         f"{CREDENTIAL_ADVICE}")
    secrets = sorted(k for k, _ in parse_qsl(parts.query) if k.lower() in SECRET_OPTIONS)
    if secrets:
        raise InputError(f"{scheme}://{parts.netloc}{parts.path}: credentials in the URI ({secrets[0]}=...) are refused; "
                         f"{CREDENTIAL_ADVICE}")
    if not parts.netloc and scheme != "hdfs":
        raise InputError(f"{uri}: no bucket in the URI")
    return uri


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a checked URI; a filesystem that cannot be made
    (unknown region, no HDFS client here) is one line."""
    check_uri(uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise InputError(f"{strip_query(uri)}: cannot open this filesystem ({first_line(exc)})") from None
    return fs, path.rstrip("/")


def join(base: str, *names: str) -> str:
    """`base/name/...` for a URI or a local path (Path() would fold `s3://` into `s3:/`)."""
    return "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])


def strip_query(uri: str) -> str:
    """For messages: the URI without its options."""
    return uri.split("?", 1)[0]

