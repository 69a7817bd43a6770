"""The one download path: ``paddle.utils.download`` with an MD5/SHA-256 check, after one
timed connection: Paddle's connects with no timeout, three times, so behind a firewall that
drops packets it waits about six minutes, then reads "Retry limit reached"."""
from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from typing import Optional

from paddle.utils.download import get_path_from_url

from .io import file_digest

__all__ = ["CONNECT_TIMEOUT", "DigestError", "DownloadError", "download", "local_path"]

CONNECT_TIMEOUT = 10.0  # seconds for the first connection


class DownloadError(ConnectionError):
    """The file could not be fetched; the message says where to put it by hand."""


class DigestError(ValueError):
    """A file does not have the expected MD5 / SHA-256 (cut short, or another file)."""


def local_path(url: str, folder: str) -> str:
    """Where ``download(url, folder)`` puts the file (Paddle's name: the URL's last part)."""
    return os.path.join(folder, url.split("/")[-1])


def _mismatch(path: str, md5: Optional[str], sha256: Optional[str]) -> Optional[str]:
    """The first expected digest ``path`` does not have (``"md5 <hex>"``), or None."""
    for name, want in (("md5", md5), ("sha256", sha256)):
        if want and file_digest(path, name) != want.lower():
            return f"{name} {want}"
    return None


def download(url: str, folder: str, md5: Optional[str] = None, sha256: Optional[str] = None,
             hint: str = "") -> str:
    """``local_path(url, folder)``, downloaded by ``paddle.utils.download`` unless present.
    A file already there is checked, never replaced; a downloaded file that fails a check
    is removed. ``hint`` is appended to errors (another way to provide the file).

    Raises:
        DownloadError: no connection within ``CONNECT_TIMEOUT``, or Paddle's tries failed.
        DigestError: the file present or downloaded does not have the expected digest.
    """
    path = local_path(url, folder)
    if os.path.isfile(path):
        bad = _mismatch(path, md5, sha256)
        if bad:
            raise DigestError(f"{path} does not have the expected {bad} of {url}; delete it "
                              f"to download it again, or put the published file there{hint}")
        return path
    try:  # one timed connection to the host (or its proxy) first
        parts = urllib.parse.urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
            parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
        get_path_from_url(url, folder, md5sum=md5, decompress=False)
    except (OSError, RuntimeError) as err:  # RuntimeError: Paddle's "retry limit reached"
        if not os.path.isfile(path):
            raise DownloadError(f"could not download {url} ({type(err).__name__}: {err}); if "
                                f"this machine is offline, download the file elsewhere and put "
                                f"it at {path}{hint}") from None
    bad = _mismatch(path, md5, sha256)
    if bad:
        os.remove(path)  # this call made it: a wrong file is not kept
        raise DigestError(f"downloaded {url} but it does not have the expected {bad} (cut "
                          f"short or changed); try again, or put the published file at "
                          f"{path}{hint}")
    return path
