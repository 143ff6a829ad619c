"""Client-side load balancing: one gRPC channel over several service replicas, no proxy.

A target is one of
  * one address, "host:port" (a single server, gRPC's default pick-first);
  * several, comma-separated, "h1:p1,h2:p2" (or a list): the names are resolved once, here,
    and the channel gets a static address list ("ipv4:10.0.0.1:50051,10.0.0.2:50051");
  * a gRPC name with a scheme, e.g. "dns:///explainrec-headless.default.svc:50051": gRPC's DNS
    resolver re-resolves it, so a Kubernetes headless service's ready pods are all used.
With several addresses or a DNS name the channel balances calls with `round_robin` and checks
each replica's grpc.health.v1 status (service ""): a replica that is loading or draining
(NOT_SERVING) or gone gets no new calls.
"""
from __future__ import annotations

import json
import socket
from typing import Sequence

SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "xds:")
BALANCED_SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": ""},
})


def split_targets(target: str | Sequence[str]) -> list[str]:
    parts = target.split(",") if isinstance(target, str) else list(target)
    out = [p.strip() for p in parts if p and p.strip()]
    if not out:
        raise ValueError("target: give host:port, several separated by commas, or dns:///name:port")
    return out


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"target: {address!r} is not host:port")
    return host.strip("[]"), int(port)


def resolve_addresses(addresses: Sequence[str]) -> str:
    """A static gRPC address list for host:port strings (names resolved now, IPv4 preferred)."""
    v4: list[str] = []
    v6: list[str] = []
    for address in addresses:
        host, port = _host_port(address)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValueError(f"target: cannot resolve {host!r} ({exc.strerror})") from None
        for family, _type, _proto, _name, sockaddr in infos:
            if family == socket.AF_INET and f"{sockaddr[0]}:{port}" not in v4:
                v4.append(f"{sockaddr[0]}:{port}")
            elif family == socket.AF_INET6 and f"[{sockaddr[0]}]:{port}" not in v6:
                v6.append(f"[{sockaddr[0]}]:{port}")
    # one scheme per channel: a name with only IPv6 addresses needs every target on IPv6
    return "ipv4:" + ",".join(v4) if v4 and not (v6 and len(v6) > len(v4)) else "ipv6:" + ",".join(v6)


def channel_target(target: str | Sequence[str]) -> tuple[str, list[tuple[str, object]]]:
    """(gRPC target string, channel options) for one or several replicas."""
    targets = split_targets(target)
    if len(targets) == 1 and not targets[0].startswith(SCHEMES):
        _host_port(targets[0])
        return targets[0], []
    if len(targets) == 1:
        resolved = targets[0]
    elif any(t.startswith(SCHEMES) for t in targets):
        raise ValueError("target: a dns:/// (or other scheme) name must be the only target")
    else:
        resolved = resolve_addresses(targets)
    return resolved, [("grpc.service_config", BALANCED_SERVICE_CONFIG)]
