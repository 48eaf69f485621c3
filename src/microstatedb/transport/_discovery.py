"""Service discovery: where the peers are, from a static list, DNS, or a file a controller keeps.

Discovery answers addresses, not membership: a node's set of peer names is fixed when it starts
(the protocols count majorities over it), and discovery keeps each name's URL current. Each
source has one method, ``async peers() -> dict[name, url]``.

- :class:`StaticPeers`: a fixed mapping (command line, config file);
- :class:`DnsPeers`: a headless-service style name per peer (``{name}.orders.ns.svc``, as a
  Kubernetes StatefulSet gives), resolved at each call; a name that does not resolve is left
  out until it does;
- :class:`PeersFile`: a JSON object ``{"name": "http://host:port"}`` that a mesh controller
  (consul-template, a ConfigMap mount) rewrites; it is read again when its mtime changes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from microstatedb.errors import ConfigurationError, DecodeError

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Discovery(Protocol):
    """A source of peer addresses."""

    async def peers(self) -> dict[str, str]:
        """The current ``{name: base URL}`` of every peer that can be found now."""
        ...


def _check(peers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, url in peers.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a peer name must be a non-empty string, got {name!r}")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"peer {name!r}: URL must start with http(s)://, got {url!r}")
        out[name] = url.rstrip("/")
    return out


class StaticPeers:
    """A fixed set of peers."""

    def __init__(self, peers: Mapping[str, str]) -> None:
        self._peers = _check(peers)

    async def peers(self) -> dict[str, str]:
        """The peers given at construction."""
        return dict(self._peers)


async def system_resolver(host: str, port: int) -> list[str]:
    """The IPv4 and IPv6 addresses of ``host`` from the system resolver (sorted)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


class DnsPeers:
    """Peers found by DNS: ``template`` with ``{name}`` is resolved for each of ``names``.

    ``DnsPeers(["orders-0", "orders-1"], "{name}.orders.prod.svc.cluster.local", 7400)``
    finds the pods of a StatefulSet behind a headless service.
    """

    def __init__(
        self,
        names: Sequence[str],
        template: str,
        port: int,
        *,
        scheme: str = "http",
        resolver: Resolver = system_resolver,
    ) -> None:
        if "{name}" not in template:
            raise ConfigurationError(f"the DNS template needs a {{name}} field, got {template!r}")
        if not 0 < port < 65536:
            raise ConfigurationError(f"port must be in 1..65535, got {port!r}")
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"scheme must be http or https, got {scheme!r}")
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise ConfigurationError("DnsPeers needs one or more non-empty peer names")
        self.names = list(names)
        self.template = template
        self.port = port
        self.scheme = scheme
        self._resolve = resolver

    async def peers(self) -> dict[str, str]:
        """Each peer whose name resolves now, at its first address."""
        found: dict[str, str] = {}
        hosts = [self.template.format(name=n) for n in self.names]
        answers = await asyncio.gather(*(self._resolve(h, self.port) for h in hosts))
        for name, addresses in zip(self.names, answers, strict=True):
            if addresses:
                address = addresses[0]
                host = f"[{address}]" if ":" in address else address
                found[name] = f"{self.scheme}://{host}:{self.port}"
        return found


class PeersFile:
    """Peers read from a JSON file that another process maintains; re-read when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mtime: int | None = None
        self._peers: dict[str, str] = {}

    async def peers(self) -> dict[str, str]:
        """The file's peers; the last good read is kept while the file is absent."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return dict(self._peers)
        if mtime != self._mtime:
            self._peers = self.load(self.path.read_text())
            self._mtime = mtime
        return dict(self._peers)

    @staticmethod
    def load(text: str) -> dict[str, str]:
        """Parse a peers file; ``DecodeError`` for text that is not a JSON object of URLs."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DecodeError(f"the peers file is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise DecodeError('the peers file must hold an object {"name": "http://host:port"}')
        try:
            return _check(data)
        except ConfigurationError as exc:
            raise DecodeError(f"the peers file has a bad entry: {exc}") from exc


async def refresh(node_peers: dict[str, str], source: Discovery) -> list[str]:
    """Update the URLs of known peers in ``node_peers`` from ``source``, in place.

    Returns the names the source listed that are not members (they are ignored until the node
    restarts with them, since majorities are counted over the members it started with).
    """
    found = await source.peers()
    for name, url in found.items():
        if name in node_peers:
            node_peers[name] = url
    return sorted(set(found) - set(node_peers))
