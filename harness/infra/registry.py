"""Ask a container registry (Docker Hub by default) how big an image is, without pulling it.

The Docker Registry HTTP API v2 (also what OCI registries serve): GET /v2/<repo>/manifests/<tag>; a 401
names a token endpoint (`WWW-Authenticate: Bearer realm=...,service=...,scope=...`) that grants anonymous
pull tokens for public images. A manifest list / OCI index is resolved to this machine's platform. The
size of an image is the sum of its compressed layers (what a pull downloads; unpacked on disk it is
typically 2-3 times that); layers shared between images are counted once by `download_bytes`.
Hosts: the first part of the name when it has a '.' or ':' or is `localhost` (plain http for localhost
and 127.0.0.1, as Docker treats them), else Docker Hub (registry-1.docker.io, `library/` for one-part names).
"""

from __future__ import annotations

import json
import platform
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry could not be asked (offline, unknown image, refused): the size stays unknown."""


@dataclass(frozen=True)
class ImageRef:
    host: str
    repo: str
    tag: str

    @property
    def base_url(self) -> str:
        local = self.host.split(":")[0] in ("localhost", "127.0.0.1")
        return f"{'http' if local else 'https'}://{self.host}"


def parse_ref(image: str) -> ImageRef:
    """`swebench/x:latest` -> (registry-1.docker.io, swebench/x, latest); `host:5000/a/b` -> (host:5000, a/b, latest)."""
    name, tag = image, "latest"
    if "@" in name:
        name, tag = name.split("@", 1)
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = ("registry-1.docker.io" if first in ("docker.io", "index.docker.io") else first), rest
    else:
        host, repo = DOCKER_HUB, name
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    return ImageRef(host, repo, tag)


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[dict, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only, built above)
        return json.loads(response.read().decode()), dict(response.headers)


def _token(challenge: str, timeout: float) -> str:
    fields = dict(_CHALLENGE.findall(challenge))
    realm = fields.pop("realm", "")
    if not challenge.lower().startswith("bearer") or not realm.startswith(("http://", "https://")):
        raise RegistryError(f"unsupported registry authentication ({challenge.split(' ')[0]})")
    body, _ = _get(f"{realm}?{urllib.parse.urlencode(fields)}", {}, timeout)
    token = body.get("token") or body.get("access_token")
    if not token:
        raise RegistryError("the registry's token endpoint gave no token")
    return str(token)


class RegistryClient:
    """Anonymous manifest reads, one bearer token per (host, repo)."""

    def __init__(self, timeout: float = 15.0, arch: str | None = None):
        self.timeout = timeout
        self.arch = _ARCH.get(arch or platform.machine(), arch or platform.machine())
        self._tokens: dict[tuple[str, str], str] = {}

    def _manifest(self, ref: ImageRef, reference: str) -> dict:
        url = f"{ref.base_url}/v2/{ref.repo}/manifests/{reference}"
        headers = {"Accept": MANIFEST_TYPES}
        if token := self._tokens.get((ref.host, ref.repo)):
            headers["Authorization"] = f"Bearer {token}"
        try:
            return _get(url, headers, self.timeout)[0]
        except urllib.error.HTTPError as e:
            if e.code == 401 and (ref.host, ref.repo) not in self._tokens:
                self._tokens[(ref.host, ref.repo)] = _token(
                    e.headers.get("WWW-Authenticate", ""), self.timeout
                )
                return self._manifest(ref, reference)
            raise RegistryError(f"{ref.host}: HTTP {e.code} for {ref.repo}:{reference}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise RegistryError(f"{ref.host} unreachable ({' '.join(str(reason).split())[:120]})") from None

    def layers(self, image: str) -> dict[str, int]:
        """Layer (and config) digest -> compressed size of `image` for this machine's platform."""
        ref = parse_ref(image)
        manifest = self._manifest(ref, ref.tag)
        if "manifests" in manifest:
            chosen = [
                m for m in manifest["manifests"]
                if (m.get("platform") or {}).get("os") == "linux" and (m.get("platform") or {}).get("architecture") == self.arch
            ]  # fmt: skip
            if not chosen:
                raise RegistryError(f"{image} has no linux/{self.arch} image")
            manifest = self._manifest(ref, chosen[0]["digest"])
        blobs = [*manifest.get("layers", []), manifest.get("config") or {}]
        return {b["digest"]: int(b.get("size", 0)) for b in blobs if b.get("digest")}


def download_bytes(
    images: list[str], client: RegistryClient | None = None
) -> tuple[int | None, dict[str, str]]:
    """(bytes to download for all `images`, shared layers once; None when any size is unknown), errors by image.

    After the first unreachable registry the others on the same host are not asked (offline: one error).
    """
    client = client or RegistryClient()
    layers: dict[str, int] = {}
    errors: dict[str, str] = {}
    dead: dict[str, str] = {}
    for image in images:
        host = parse_ref(image).host
        if host in dead:
            errors[image] = dead[host]
            continue
        try:
            layers |= client.layers(image)
        except RegistryError as e:
            errors[image] = str(e)
            if "unreachable" in str(e):
                dead[host] = str(e)
    return (None if errors else sum(layers.values())), errors
