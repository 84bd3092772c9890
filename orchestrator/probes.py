"""Is the service there? A short, stated wait for each service the commands talk to, before
anything is registered or started, so that a wrong address is one line, not a hang.

    probe_ray(address)          # a Ray head's GCS (HOST:6379) or client server (ray://HOST:10001)
    probe_dashboard(url)        # a Ray dashboard (job submission), e.g. http://HEAD:8265
    probe_mlflow(uri)           # an MLflow tracking server (http(s)://…); file and SQLite stores pass

Each waits at most ``db.engine.connect_timeout()`` seconds ($GAPSWEEP_CONNECT_TIMEOUT, default 10)
and raises ``ServiceUnreachable`` naming the address, what was tried and what to do.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request

from db.engine import CONNECT_TIMEOUT_ENV, connect_timeout
from workers.errors import GapsweepError

RAY_DEFAULT_PORT = 6379
RAY_CLIENT_DEFAULT_PORT = 10001


class ServiceUnreachable(GapsweepError, ConnectionError):
    """A service did not answer within the connect timeout; the message says which and the fix."""


def _waited(timeout: float) -> str:
    return f"waiting up to {timeout:g} s, ${CONNECT_TIMEOUT_ENV}"


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(text if "//" in text else f"//{text}")
    try:
        port = parsed.port or default_port
    except ValueError:
        raise ServiceUnreachable(f"{text!r} is not an address; give HOST:PORT") from None
    if not parsed.hostname:
        raise ServiceUnreachable(f"{text!r} is not an address; give HOST:PORT")
    return parsed.hostname, port


def tcp_answers(host: str, port: int, timeout: float) -> str | None:
    """None when something accepts a TCP connection at host:port within ``timeout``; else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return "no answer"
    except OSError as error:
        return error.strerror or str(error)


def ray_address(address: str) -> str | None:
    """The address ``ray.init(address)`` would connect to, when it can be known without Ray:
    'auto' means $RAY_ADDRESS (None if unset: Ray then looks for a local head itself)."""
    if address == "auto":
        return os.environ.get("RAY_ADDRESS") or None
    return address


def probe_ray(address: str, timeout: float | None = None) -> None:
    """A Ray head answers at ``address`` (HOST:PORT of its GCS, or ray://HOST:PORT)."""
    resolved = ray_address(address)
    if resolved is None or resolved in ("local",):
        return
    timeout = connect_timeout() if timeout is None else timeout
    client = resolved.startswith("ray://")
    host, port = _host_port(resolved, RAY_CLIENT_DEFAULT_PORT if client else RAY_DEFAULT_PORT)
    why = tcp_answers(host, port, timeout)
    if why is not None:
        shown = address if resolved == address else f"{address} (RAY_ADDRESS={resolved})"
        raise ServiceUnreachable(
            f"no Ray cluster at --address {shown}: a TCP connection to {host}:{port} failed "
            f"({why}; {_waited(timeout)}); start one (e.g. gapsweep stack up) or leave --address "
            "out to run locally")


def _http_get(url: str, timeout: float) -> str | None:
    """None when ``url`` answers an HTTP GET (any status) within ``timeout``; else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None                                   # it answered
    except urllib.error.URLError as error:
        reason = error.reason
        return getattr(reason, "strerror", None) or str(reason)
    except (socket.timeout, TimeoutError):
        return "no answer"
    except OSError as error:
        return error.strerror or str(error)


def _probe_http(service: str, url: str, path: str, fix: str, timeout: float | None) -> None:
    """``service`` answers ``GET url + path`` within the timeout, else one message with ``fix``."""
    timeout = connect_timeout() if timeout is None else timeout
    target = url.rstrip("/") + path
    why = _http_get(target, timeout)
    if why is not None:
        raise ServiceUnreachable(f"no {service}: GET {target} failed ({why}; {_waited(timeout)}); "
                                 f"{fix}")


def probe_dashboard(url: str, timeout: float | None = None) -> None:
    """A Ray dashboard (the job submission API) answers at ``url``."""
    _probe_http(f"Ray dashboard at --address {url}", url if "://" in url else f"http://{url}",
                "/api/version", "give the head's dashboard address, e.g. http://HEAD:8265 "
                "(gapsweep stack status shows it for a local stack)", timeout)


def probe_mlflow(uri: str, timeout: float | None = None) -> None:
    """An MLflow tracking server answers at ``uri``; local stores (files, SQLite) always pass."""
    if uri.startswith(("http://", "https://")):
        _probe_http(f"MLflow tracking server at {uri}", uri, "/health",
                    "start it or give another tracking URI (gapsweep run --no-mlflow records in "
                    "the database only)", timeout)
