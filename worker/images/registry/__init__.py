"""An OCI distribution (registry API v2) client: pull into and push from an ``ImageStore``.

Typical use (on an event loop)::

    name = remote_name("localhost:5000/team/app:1")
    access = RegistryAccess(credentials=Credentials("me", "secret"), ca_pem=ca_text)
    result = await Puller(store, name, access, progress=show).pull(parse_platform("linux/arm64"))
    await Pusher(store, store.get("app:1"), name, access).push()

Names load on first use (``protocol.lazyface``): a client that only wants the error codes does
not import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazyface import lazy_face

if TYPE_CHECKING:
    from worker.images.registry.auth import Credentials as Credentials
    from worker.images.registry.errors import ManifestUnknown as ManifestUnknown
    from worker.images.registry.errors import RegistryError as RegistryError
    from worker.images.registry.errors import RegistryRefused as RegistryRefused
    from worker.images.registry.errors import RegistryUnauthorized as RegistryUnauthorized
    from worker.images.registry.login import SearchHit as SearchHit
    from worker.images.registry.login import check_login as check_login
    from worker.images.registry.login import search as search
    from worker.images.registry.names import RemoteName as RemoteName
    from worker.images.registry.names import registry_key as registry_key
    from worker.images.registry.names import remote_name as remote_name
    from worker.images.registry.names import split_domain as split_domain
    from worker.images.registry.platform_choice import WantedPlatform as WantedPlatform
    from worker.images.registry.platform_choice import parse_platform as parse_platform
    from worker.images.registry.platform_choice import platform_fits as platform_fits
    from worker.images.registry.progress import BlobProgress as BlobProgress
    from worker.images.registry.pull import Puller as Puller
    from worker.images.registry.pull import PullResult as PullResult
    from worker.images.registry.push import Pusher as Pusher
    from worker.images.registry.push import PushResult as PushResult
    from worker.images.registry.session import RegistryAccess as RegistryAccess

_NAMES: dict[str, tuple[str, ...]] = {
    "auth": ("Credentials",),
    "errors": ("ManifestUnknown", "RegistryError", "RegistryRefused", "RegistryUnauthorized"),
    "login": ("SearchHit", "check_login", "search"),
    "names": ("RemoteName", "registry_key", "remote_name", "split_domain"),
    "platform_choice": ("WantedPlatform", "parse_platform", "platform_fits"),
    "progress": ("BlobProgress",),
    "pull": ("PullResult", "Puller"),
    "push": ("PushResult", "Pusher"),
    "session": ("RegistryAccess",),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)
