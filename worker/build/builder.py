"""Building an image from a Dockerfile and an unpacked context: stages in order up to the
target, each instruction a step (``Step N/M : ...``) that either comes from the layer cache
or runs (RUN in a container on the native runtime, COPY/ADD into a new layer, the rest into
the config). Only a finished build records an image; a failed step leaves no container,
mount or layer of its own behind. Blocking store work runs in threads.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from protocol.errors import InvalidArgument, ShoalError
from worker.build import context as ctx
from worker.build import metadata
from worker.build.dockerfile import Dockerfile, Instruction, parse
from worker.build.errors import BuildFailed, DockerfileError
from worker.build.layerfile import new_layer, write_upper
from worker.build.reproducible import SOURCE_DATE_EPOCH, epoch_rfc3339, source_date_epoch
from worker.build.run import RunRequest, mounted_stage, run_in_container
from worker.build.shellwords import split_raw
from worker.build.state import Layer, StageState, now_rfc3339
from worker.engine.bundle import resolve_user
from worker.images.buildcache import CacheRecord
from worker.images.digest import chain_ids, digest_bytes
from worker.images.errors import ImageNotFound
from worker.images.hostplatform import host_platform
from worker.images.layers import LayerRef
from worker.images.oci import MT_OCI_MANIFEST, Descriptor
from worker.images.reference import parse_reference
from worker.images.store import Image, ImageStore

if TYPE_CHECKING:  # the native runtime is Linux's; a worker imports this anywhere
    from worker.runtime.client import RuntimeHelper

Emit = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BuildOptions:
    dockerfile: str
    dockerfile_name: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    platform: str = ""


@dataclass(slots=True)
class _Stage:
    index: int
    name: str
    base: Instruction
    body: list[Instruction]


@dataclass(slots=True)
class _Scope:
    """A stage while it builds: its state, the ARGs declared in it, whether CMD was set."""

    state: StageState
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False

    def env(self) -> dict[str, str]:
        return {**self.args, **self.state.env}  # ENV wins over ARG, as in Docker


def _stages(dockerfile: Dockerfile) -> tuple[list[Instruction], list[_Stage]]:
    globals_: list[Instruction] = []
    stages: list[_Stage] = []
    for ins in dockerfile.instructions:
        if ins.keyword == "FROM":
            words = ins.text.split()
            name = ""
            if len(words) == 3 and words[1].upper() == "AS":
                name = words[2].lower()
            elif len(words) != 1:
                raise DockerfileError("FROM takes an image and optionally AS name",
                                      line=ins.line, file=dockerfile.file)
            stages.append(_Stage(len(stages), name, ins, []))
        elif stages:
            stages[-1].body.append(ins)
        else:
            globals_.append(ins)
    return globals_, stages


def _platform_text(state_os: str, arch: str, variant: str | None) -> str:
    return f"{state_os}/{arch}" + (f"/{variant}" if variant else "")


class Builder:
    """One build. ``emit`` receives the output a ``docker build`` would print. Without a
    ``runtime`` a Dockerfile with a RUN is refused at that step."""

    def __init__(self, store: ImageStore, runtime: RuntimeHelper | None, scratch: Path,
                 emit: Emit, *, fetch_base: Callable[[str], Awaitable[None]] | None = None
                 ) -> None:
        self.store = store
        self.fetch_base = fetch_base
        self.runtime = runtime
        self.scratch = scratch
        self.emit = emit
        self.active_chains: set[str] = set()
        self.active_blobs: set[str] = set()

    async def build(self, options: BuildOptions, context_dir: Path) -> Image:
        file = options.dockerfile_name
        dockerfile = parse(options.dockerfile, file)
        self.file, self.escape = file, dockerfile.escape
        self.options, self.context_dir = options, context_dir
        host = host_platform()
        here = _platform_text(host.os, host.architecture, host.variant)
        if options.platform and options.platform.split("/")[:2] != here.split("/")[:2]:
            raise InvalidArgument(f"this worker builds for {here}, not {options.platform}: "
                                  "a build runs on a worker of its target platform (no "
                                  "emulation)")
        global_ins, stages = _stages(dockerfile)
        last = len(stages) - 1
        if options.target:
            found = [s for s in stages if s.name == options.target.lower()]
            if not found:
                raise DockerfileError(f"target stage {options.target!r} could not be found",
                                      file=file)
            last = found[0].index
        stages = stages[:last + 1]
        total = len(global_ins) + sum(1 + len(s.body) for s in stages)
        self.step, self.total = 0, total
        self.global_args: dict[str, str] = {
            "TARGETPLATFORM": here, "TARGETOS": host.os, "TARGETARCH": host.architecture,
            "BUILDPLATFORM": here, "BUILDOS": host.os, "BUILDARCH": host.architecture}
        self.consumed: set[str] = set()
        self.epoch = source_date_epoch(options.build_args)
        if self.epoch is not None:
            self.consumed.add(SOURCE_DATE_EPOCH)  # the build's own, as in BuildKit
        declared_globals: dict[str, str] = {}
        for ins in global_ins:
            await self._step(ins)
            for name, value in self._arg_values(ins, dict(declared_globals), declared_globals):
                declared_globals[name] = value
        self.global_values = declared_globals
        done: dict[str, StageState] = {}
        finals: list[StageState] = []
        self.store.chain_guards.append(self._chains_in_use)
        self.store.blob_guards.append(self._blobs_in_use)
        try:
            for stage in stages:
                scope = await self._from(stage, done, finals)
                for ins in stage.body:
                    await self._step(ins)
                    scope = await self._instruction(ins, scope, done, finals)
                    await self.emit(f" ---> {self._short(scope.state)}\n")
                finals.append(scope.state)
                if stage.name:
                    done[stage.name] = scope.state
            unused = sorted(set(options.build_args) - self.consumed)
            if unused:
                await self.emit(f"[Warning] One or more build-args {unused} were not "
                                "consumed\n")
            image = await asyncio.to_thread(self._record, finals[-1], list(options.tags))
        finally:
            self.store.chain_guards.remove(self._chains_in_use)
            self.store.blob_guards.remove(self._blobs_in_use)
        await self.emit(f"Successfully built {image.short_id}\n")
        for tag in image.tags:
            if tag in [parse_reference(t).tagged for t in options.tags]:
                await self.emit(f"Successfully tagged {tag}\n")
        return image

    def _chains_in_use(self) -> set[str]:
        return set(self.active_chains)

    def _blobs_in_use(self) -> set[str]:
        """The layers this build's stages hold: an ``image prune`` meanwhile (which clears
        the cache records that otherwise keep them) or an ``rmi`` of a base keeps them."""
        return set(self.active_blobs)

    def _held(self, layer: Layer) -> Layer:
        self.active_blobs.add(layer.blob.digest)
        return layer

    # --- bookkeeping --------------------------------------------------------------------------
    async def _step(self, ins: Instruction) -> None:
        self.step += 1
        await self.emit(f"Step {self.step}/{self.total} : {ins.original}\n")

    def _short(self, state: StageState) -> str:
        return digest_bytes(state.documents()[0]).partition(":")[2][:12]

    def _fail(self, ins: Instruction, message: str, **details: str) -> BuildFailed:
        return BuildFailed(f"{self.file}:{ins.line}: {message}",
                           details={"line": str(ins.line), **details})

    def _key(self, state: StageState, created_by: str, extra: str = "") -> str:
        # A reproducible build's steps are its own: their times and their layers' mtimes
        # are the epoch's, so they are cached apart from other builds'.
        parts = [state.cache_id(), created_by, extra]
        if self.epoch is not None:
            parts.append(f"{SOURCE_DATE_EPOCH}={self.epoch}")
        return digest_bytes(msgspec.json.encode(parts))

    def _now(self) -> str:
        """A step's ``created`` time: now, or a reproducible build's epoch."""
        return now_rfc3339() if self.epoch is None else epoch_rfc3339(self.epoch)

    def _cached(self, key: str) -> CacheRecord | None:
        if self.options.no_cache:
            return None
        record = self.store.build_cache.get(key)
        if record is not None and record.layer is not None \
                and not self.store.blobs.has(record.layer.digest):
            return None
        return record

    def _record(self, state: StageState, tags: list[str]) -> Image:
        config, manifest = state.documents()
        with self.store.lock:
            self.store.blobs.put_bytes(config)
            digest = self.store.blobs.put_bytes(manifest)
            return self.store.add(Descriptor(MT_OCI_MANIFEST, digest, len(manifest)), tags)

    def _commit(self, key: str, record: CacheRecord) -> None:
        with self.store.lock:
            self.store.build_cache.put(key, record)

    # --- FROM and ARG -------------------------------------------------------------------------
    def _arg_values(self, ins: Instruction, env: dict[str, str],
                    globals_: dict[str, str]) -> list[tuple[str, str]]:
        found = []
        for word in split_raw(ins.text, self.escape):
            name, sep, default = word.partition("=")
            if not name:
                raise DockerfileError("ARG needs a name", line=ins.line, file=self.file)
            if name in self.options.build_args:
                value = self.options.build_args[name]
                self.consumed.add(name)
            elif sep:
                value = metadata.expand(ins, default, env, self.escape, self.file)
            else:
                value = globals_.get(name, self.global_args.get(name, ""))
            found.append((name, value))
        return found

    async def _from(self, stage: _Stage, done: dict[str, StageState],
                    finals: list[StageState]) -> _Scope:
        ins = stage.base
        await self._step(ins)
        base = metadata.expand(ins, ins.text.split()[0], self.global_values, self.escape,
                               self.file)
        platform = ins.flags.get("platform")
        if platform:
            platform = metadata.expand(ins, platform, {**self.global_args, **self.global_values},
                                       self.escape, self.file)
        if base.lower() == "scratch":
            state = StageState.scratch()
        elif base.lower() in done:
            state = done[base.lower()]
        else:
            state = await self._base_image(ins, base)
        here = _platform_text(state.os, state.architecture, state.variant)
        if platform and platform.split("/")[:2] != here.split("/")[:2]:
            raise self._fail(ins, f"FROM --platform={platform}: the base is {here}; this "
                             "worker builds only for its own platform")
        await self.emit(f" ---> {self._short(state)}\n")
        return _Scope(state)

    async def _base_image(self, ins: Instruction, ref: str) -> StageState:
        """An image from the store; in a cluster, fetched from the scheduler if missing."""
        if self.fetch_base is not None:
            try:
                await asyncio.to_thread(self.store.get, ref)
            except ImageNotFound:
                await self.emit(f" ---> fetching {ref} from the cluster's images\n")
                try:
                    await self.fetch_base(ref)
                except ShoalError as exc:
                    raise self._fail(ins, f"the base image {ref!r}: {exc.message}") from exc
        return await asyncio.to_thread(self._image_state, ins, ref)

    def _image_state(self, ins: Instruction, base: str) -> StageState:
        try:
            state = StageState.from_image(self.store.get(base))
            for layer in state.layers:
                self._held(layer)
            return state
        except ImageNotFound as exc:
            raise self._fail(ins, f"the base image {base!r} is not in this worker's store "
                             "(shoal build does not pull: import or pull it first)") from exc

    # --- one instruction ----------------------------------------------------------------------
    async def _instruction(self, ins: Instruction, scope: _Scope, done: dict[str, StageState],
                           finals: list[StageState]) -> _Scope:
        state = scope.state
        if ins.keyword == "ARG":
            for name, value in self._arg_values(ins, scope.env(), self.global_values):
                scope.args[name] = value
            scope.state = await self._config_step(ins, state, state, f"ARG {ins.text}")
            return scope
        if ins.keyword in metadata.METADATA:
            changed = metadata.apply(state, ins, scope.env(), self.escape, self.file,
                                     scope.cmd_set)
            scope.cmd_set = scope.cmd_set or ins.keyword == "CMD"
            text = ins.original
            scope.state = await self._config_step(ins, state, changed, text)
            return scope
        if ins.keyword == "RUN":
            scope.state = await self._run(ins, scope)
            return scope
        if ins.keyword in ("COPY", "ADD"):
            scope.state = await self._copy(ins, scope, done, finals)
            return scope
        raise DockerfileError(f"{ins.keyword} is not supported", line=ins.line, file=self.file)

    async def _config_step(self, ins: Instruction, before: StageState, after: StageState,
                           created_by: str) -> StageState:
        key = self._key(after, created_by, before.cache_id())
        record = self._cached(key)
        if record is not None:
            await self.emit(" ---> Using cache\n")
            return after.with_step(record.created_by, record.created, None)
        record = CacheRecord(created_by=created_by, created=self._now())
        await asyncio.to_thread(self._commit, key, record)
        return after.with_step(record.created_by, record.created, None)

    def _layer_refs(self, state: StageState) -> list[LayerRef]:
        for layer in state.layers:
            self._held(layer)
        refs = [LayerRef(layer.blob.digest, layer.diff_id) for layer in state.layers]
        self.active_chains.update(chain_ids([r.diff_id for r in refs]))
        return refs

    async def _run(self, ins: Instruction, scope: _Scope) -> StageState:
        state = scope.state
        argv = list(ins.exec_form) if ins.exec_form is not None else [*state.shell, ins.text]
        # Build args a RUN sees are part of its key (Docker's "|N K=V" prefix).
        visible = sorted((k, v) for k, v in scope.args.items() if k not in state.env)
        prefix = f"|{len(visible)} " + " ".join(f"{k}={v}" for k, v in visible) + " " \
            if visible else ""
        created_by = f"RUN {prefix}{' '.join(argv)}"
        key = self._key(state, created_by)
        record = self._cached(key)
        if record is not None and record.layer is not None and record.diff_id:
            await self.emit(" ---> Using cache\n")
            return state.with_step(record.created_by, record.created,
                                   self._held(Layer(record.layer, record.diff_id)))
        if self.runtime is None:
            raise self._fail(ins, "RUN needs the native runtime, which this worker does not "
                             "use")
        container_id = f"shoal-build-{os.urandom(6).hex()}"
        await self.emit(f" ---> Running in {container_id[-12:]}\n")
        env = [*(state.config.env or ()), *(f"{k}={v}" for k, v in visible)]
        request = RunRequest(argv=argv, env=env, user=state.config.user or "",
                             workdir=state.config.working_dir or "/")
        bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=self.scratch))
        try:
            async with mounted_stage(self.store, self.scratch, self._layer_refs(state)) \
                    as (rootfs, upper):
                code = await run_in_container(self.runtime, rootfs, bundle, container_id,
                                              request, self._output)
                if code != 0:
                    raise self._fail(ins, f"The command '{' '.join(argv)}' returned a non-zero "
                                     f"code: {code}", exit_code=str(code))
                layer, made = await asyncio.to_thread(self._diff_layer, upper, key, created_by)
        finally:
            await asyncio.to_thread(_remove_tree, bundle)
        await self.emit(f"Removing intermediate container {container_id[-12:]}\n")
        return state.with_step(created_by, made.created, self._held(layer))

    async def _output(self, data: bytes) -> None:
        await self.emit(data.decode(errors="replace"))

    def _diff_layer(self, upper: Path, key: str, created_by: str) -> tuple[Layer, CacheRecord]:
        with new_layer(self.store, mtime_limit=self.epoch) as (tar, commit):
            write_upper(tar, upper)
            return self._commit_layer(commit, key, created_by)

    def _commit_layer(self, commit: Callable[[], Layer], key: str,
                      created_by: str) -> tuple[Layer, CacheRecord]:
        """Store the layer and its cache record together: the record is what keeps the blob
        from garbage collection until an image references it."""
        with self.store.lock:
            layer = self._held(commit())
            record = CacheRecord(created_by=created_by, created=self._now(),
                                 layer=layer.blob, diff_id=layer.diff_id)
            self.store.build_cache.put(key, record)
            return layer, record

    # --- COPY and ADD -------------------------------------------------------------------------
    async def _copy(self, ins: Instruction, scope: _Scope, done: dict[str, StageState],
                    finals: list[StageState]) -> StageState:
        state = scope.state
        env = scope.env()
        args = metadata.words(ins, env, self.escape, self.file)
        if len(args) < 2:
            raise DockerfileError(f"{ins.keyword} requires at least two arguments",
                                  line=ins.line, file=self.file)
        sources, dest = args[:-1], args[-1]
        chmod: int | None = None
        if "chmod" in ins.flags:
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise DockerfileError(f"--chmod={ins.flags['chmod']}: not an octal mode",
                                      line=ins.line, file=self.file) from None
        source_state: StageState | None = None
        if "from" in ins.flags:
            source_state = await self._copy_source(ins, ins.flags["from"], done, finals)
        chown = metadata.expand(ins, ins.flags["chown"], env, self.escape, self.file) \
            if "chown" in ins.flags else ""
        async with mounted_stage(self.store, self.scratch, self._layer_refs(state)) \
                as (rootfs, _upper):
            owner = self._owner(ins, chown, rootfs) if chown else None
            workdir = state.config.working_dir or "/"

            def in_image(path: str) -> bool:
                return os.path.lexists(rootfs / path.lstrip("/"))

            def dir_in_image(path: str) -> bool:
                return (rootfs / path.lstrip("/")).is_dir()

            if source_state is None:
                return await self._copy_from(ins, state, self.context_dir, sources, dest,
                                             workdir, owner, chmod, in_image, dir_in_image)
            async with mounted_stage(self.store, self.scratch,
                                     self._layer_refs(source_state)) as (other, _):
                return await self._copy_from(ins, state, other, sources, dest, workdir,
                                             owner, chmod, in_image, dir_in_image)

    async def _copy_source(self, ins: Instruction, ref: str, done: dict[str, StageState],
                           finals: list[StageState]) -> StageState:
        if ref.lower() in done:
            return done[ref.lower()]
        if ref.isdigit():
            if int(ref) < len(finals):
                return finals[int(ref)]
            raise self._fail(ins, f"--from={ref}: no stage {ref} before this one")
        return await self._base_image(ins, ref)

    def _owner(self, ins: Instruction, chown: str, rootfs: Path) -> tuple[int, int]:
        user, _, group = chown.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)
        try:
            uid, gid, _ = resolve_user(chown, rootfs)
        except InvalidArgument as exc:
            raise self._fail(ins, f"--chown={chown}: {exc.message}") from exc
        if not group:
            gid = uid if user.isdigit() else gid
        return uid, gid

    async def _copy_from(self, ins: Instruction, state: StageState, root: Path,
                         sources: list[str], dest: str, workdir: str,
                         owner: tuple[int, int] | None, chmod: int | None,
                         in_image: Callable[[str], bool],
                         dir_in_image: Callable[[str], bool]) -> StageState:
        def plan() -> tuple[list[ctx.CopyItem], str]:
            items = ctx.plan_copy(root, sources, dest, workdir, keyword=ins.keyword,
                                  is_dir_in_image=dir_in_image, add=ins.keyword == "ADD")
            return items, ctx.content_digest(items, owner, chmod)

        try:
            items, content = await asyncio.to_thread(plan)
        except BuildFailed as exc:
            raise self._fail(ins, exc.message) from exc
        created_by = f"{ins.keyword} {content} in {dest}"
        if "from" in ins.flags:
            created_by = f"{ins.keyword} --from={ins.flags['from']} {content} in {dest}"
        key = self._key(state, created_by, f"{owner}:{chmod}")
        record = self._cached(key)
        if record is not None and record.layer is not None and record.diff_id:
            await self.emit(" ---> Using cache\n")
            return state.with_step(record.created_by, record.created,
                                   self._held(Layer(record.layer, record.diff_id)))

        def write() -> tuple[Layer, CacheRecord]:
            with new_layer(self.store, mtime_limit=self.epoch) as (tar, commit):
                ctx.write_copy(tar, items, owner, chmod, in_image)
                return self._commit_layer(commit, key, created_by)

        try:
            layer, made = await asyncio.to_thread(write)
        except BuildFailed as exc:
            raise self._fail(ins, exc.message) from exc
        return state.with_step(created_by, made.created, self._held(layer))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
