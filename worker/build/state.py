"""What a build stage has made so far: its layers, its image config and its history; the
documents (config, manifest) it becomes; and the id that keys the layer cache (pure)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace

import msgspec

from worker.images.digest import digest_bytes
from worker.images.hostplatform import host_platform
from worker.images.importer import DEFAULT_PATH
from worker.images.oci import (
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    ImageHealthcheck,
    Manifest,
    RootFS,
    encode,
)
from worker.images.store import Image

DEFAULT_SHELL = ("/bin/sh", "-c")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of the image being built: its blob as stored and its uncompressed digest."""

    blob: Descriptor
    diff_id: str


@dataclass(frozen=True, slots=True)
class StageState:
    """Immutable: each instruction returns a new state (so a failed step changes nothing)."""

    os: str
    architecture: str
    variant: str | None = None
    layers: tuple[Layer, ...] = ()
    config: ContainerConfig = field(default_factory=ContainerConfig)
    history: tuple[History, ...] = ()
    base_id: str = ""  # the image the stage started from ("" for scratch)
    author: str | None = None

    @classmethod
    def scratch(cls) -> StageState:
        host = host_platform()
        return cls(os=host.os, architecture=host.architecture, variant=host.variant,
                   config=ContainerConfig(env=[DEFAULT_PATH]))

    @classmethod
    def from_image(cls, image: Image) -> StageState:
        layers = tuple(Layer(d, diff_id) for d, diff_id
                       in zip(image.manifest.layers, image.config.rootfs.diff_ids, strict=True))
        return cls(os=image.config.os, architecture=image.config.architecture,
                   variant=image.config.variant, layers=layers,
                   config=image.config.config or ContainerConfig(),
                   history=tuple(image.config.history or ()), base_id=image.id,
                   author=image.config.author)

    # --- the config ---------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        pairs = (entry.partition("=") for entry in self.config.env or ())
        return {key: value for key, _, value in pairs}

    @property
    def shell(self) -> list[str]:
        return list(self.config.shell or DEFAULT_SHELL)

    def with_config(self, **changes: object) -> StageState:
        return replace(self, config=msgspec.structs.replace(self.config, **changes))

    def with_env(self, pairs: list[tuple[str, str]]) -> StageState:
        env = dict(self.env)
        for key, value in pairs:
            env.pop(key, None)  # a changed variable moves to the end, as in Docker
            env[key] = value
        return self.with_config(env=[f"{k}={v}" for k, v in env.items()])

    def with_health(self, health: ImageHealthcheck | None) -> StageState:
        return self.with_config(healthcheck=health)

    def with_step(self, created_by: str, created: str, layer: Layer | None) -> StageState:
        entry = History(created=created, created_by=created_by, empty_layer=layer is None)
        layers = self.layers + ((layer,) if layer is not None else ())
        return replace(self, layers=layers, history=(*self.history, entry))

    # --- identity and documents ---------------------------------------------------------------
    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    def cache_id(self) -> str:
        """What the next step's cache key starts from: the layers and the runtime config
        (Docker's parent image id, without the times that history adds)."""
        doc = {"os": self.os, "arch": self.architecture, "variant": self.variant,
               "author": self.author,
               "layers": self.diff_ids, "config": msgspec.to_builtins(self.config)}
        return digest_bytes(msgspec.json.encode(doc))

    def image_config(self) -> ImageConfig:
        created = self.history[-1].created if self.history else None
        return ImageConfig(architecture=self.architecture, os=self.os, variant=self.variant,
                           created=created, author=self.author,
                           rootfs=RootFS("layers", self.diff_ids),
                           config=self.config, history=list(self.history))

    def documents(self) -> tuple[bytes, bytes]:
        """(config, manifest) bytes; the image id is the digest of the first."""
        config = encode(self.image_config())
        manifest = Manifest(schema_version=2, media_type=MT_OCI_MANIFEST,
                            config=Descriptor(MT_OCI_CONFIG, digest_bytes(config), len(config)),
                            layers=[layer.blob for layer in self.layers])
        return config, encode(manifest)
