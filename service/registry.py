"""The models a server holds: bundles by name and version, each with its runner and scheduler.

Loading at start-up is all-or-nothing and happens before the server binds its port: a missing or
corrupt bundle (or an execution provider that is required but absent) stops start-up with one
clear BundleError. Requests name a model by ModelSpec; an unknown one raises ModelNotFound. While
serving, service/reload.py adds and removes versions (`add`, `remove`); a call that already holds
a model keeps it until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.sessions import ProviderUnavailable, Runner, RunnerConfig
from s2s.bundle import (
    DEFAULT_BUNDLE_DIR,
    MANIFEST,
    Bundle,
    BundleError,
    find_bundles,
    load_bundle,
    sha256_file,
)
from service.engine_process import ProcessScheduler
from service.errors import LastModel, ModelNotFound, QueueFull, shown
from service.observer import NullObserver, SchedulerObserver
from service.pool import SchedulerPool
from service.scheduler import Scheduler, SchedulerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """What the server needs of a runner whose sessions live in the engine's process."""

    provider: str

    def warm_up(self) -> None:
        pass  # the engine warmed up before it said it was ready


@dataclass
class LoadedModel:
    bundle: Bundle
    runner: Runner | EngineInfo
    scheduler: Scheduler | SchedulerPool | ProcessScheduler
    bundle_sha: str  # sha256 of manifest.json, which pins every file's sha256
    observer: SchedulerObserver = field(default_factory=NullObserver)  # its metrics

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version


def _version_key(version: str) -> tuple:
    # "10" sorts after "9"; non-numeric parts compare as text.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-]", version))


def resolve_bundle_dirs(paths: Sequence[Path]) -> list[Path]:
    """Bundle directories from the configured paths (each a bundle or a DIR/<name>/<version>/
    tree); no paths means the bundle shipped in the package."""
    if not paths:
        if not (DEFAULT_BUNDLE_DIR / MANIFEST).is_file():
            raise BundleError(
                f"no --bundle given and the default bundle {DEFAULT_BUNDLE_DIR} is missing "
                "(rebuild it with scripts/build_default_bundle.sh or pass --bundle DIR)"
            )
        return [DEFAULT_BUNDLE_DIR]
    found: list[Path] = []
    for path in paths:
        if not Path(path).is_dir():
            raise BundleError(f"bundle directory {path} does not exist")
        dirs = find_bundles(path)
        if not dirs:
            raise BundleError(f"{path} holds no bundle ({MANIFEST} or <name>/<version>/{MANIFEST})")
        found.extend(dirs)
    return found


ObserverFactory = Callable[[Bundle, str, str], SchedulerObserver]


def open_model(bundle: Bundle, runner_config: RunnerConfig, scheduler_config: SchedulerConfig,
               observer_for: ObserverFactory) -> LoadedModel:  # fmt: skip
    """Build a checked bundle's runner and scheduler (not started, not warmed up; blocking:
    run it in a thread)."""
    path = bundle.path
    sha = sha256_file(bundle.path / MANIFEST)
    if scheduler_config.engine == "process":
        engine = ProcessScheduler(bundle.path, runner_config, scheduler_config)
        engine.open()  # raises ProviderUnavailable, EngineStartError
        engine.observer = observer = observer_for(bundle, sha, engine.provider)
        return LoadedModel(bundle, EngineInfo(engine.provider), engine, sha, observer)
    try:
        runner = Runner.from_bundle(bundle, runner_config)
    except ProviderUnavailable:
        raise
    except Exception as exc:  # onnxruntime raises its own types for unreadable graphs
        raise BundleError(f"bundle {path}: ONNX Runtime cannot load its graphs: {exc}") from exc
    observer = observer_for(bundle, sha, runner.provider)
    scheduler = (
        SchedulerPool(runner, scheduler_config, scheduler_config.decode_threads, observer)
        if scheduler_config.decode_threads > 1
        else Scheduler(runner, scheduler_config, observer)
    )
    return LoadedModel(bundle, runner, scheduler, sha, observer)


class ModelRegistry:
    """Loaded models by (name, version). The first model's name is the default; a request that
    names no version gets the newest loaded one."""

    def __init__(self, models: Sequence[LoadedModel]):
        if not models:
            raise BundleError("no model to serve")
        self._models: dict[tuple[str, str], LoadedModel] = {}
        for model in models:
            self.add(model)
        self.default_name = models[0].name

    @property
    def models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def add(self, model: LoadedModel) -> None:
        key = (model.name, model.version)
        if key in self._models:
            raise BundleError(f"two bundles are both {model.name}/{model.version}; serve each once")
        self._models[key] = model

    def remove(self, name: str, version: str) -> LoadedModel:
        """Stop routing calls to name/version (its calls in progress keep it) and return it."""
        if (name, version) not in self._models:
            raise ModelNotFound(
                f"no model {shown(name)}/{shown(version)} is loaded", f"{shown(name)}/{shown(version)}"
            )
        if len(self._models) == 1:
            raise LastModel(f"{name}/{version} is the only model loaded; load another before unloading it")
        model = self._models.pop((name, version))
        if not any(m.name == self.default_name for m in self._models.values()):
            self.default_name = next(iter(self._models.values())).name
        return model

    @classmethod
    def load(
        cls,
        paths: Sequence[Path],
        runner_config: RunnerConfig,
        scheduler_config: SchedulerConfig,
        observer_for: ObserverFactory = lambda *_: NullObserver(),
    ) -> ModelRegistry:
        """Load every bundle (blocking: run it in a thread). observer_for(bundle, manifest sha,
        provider actually used) gives each model's scheduler its metrics observer."""
        models: list[LoadedModel] = []
        try:
            for path in resolve_bundle_dirs(paths):
                # load_bundle verifies the format and every file's checksum; raises BundleError
                models.append(open_model(load_bundle(path), runner_config, scheduler_config, observer_for))
        except BaseException:
            for model in models:  # engine processes already started must not outlive the refusal
                if isinstance(model.scheduler, ProcessScheduler):
                    model.scheduler.close()
            raise
        for model in models:
            log.info("loaded %s/%s from %s on %s", model.name, model.version, model.bundle.path,
                     model.runner.provider)  # fmt: skip
        return cls(models)

    def get(self, name: str = "", version: str = "") -> LoadedModel:
        """The model named `name` (the default name when empty) at `version` (the newest loaded
        when empty)."""
        asked = name or self.default_name
        candidates = [
            m for m in self._models.values() if m.name == asked and (not version or m.version == version)
        ]
        if not candidates:
            spec = f"{shown(asked)}{'/' + shown(version) if version else ''}"
            what = f"the default model {spec}" if not name else f"model {spec}"
            raise ModelNotFound(f"no {what} is loaded; loaded: {self.specs()}", spec)
        if len(candidates) == 1:  # the common case: no version keys to compute on every call
            return candidates[0]
        return max(candidates, key=lambda m: _version_key(m.version))

    def all_queues_full(self) -> QueueFull | None:
        """A QueueFull for the next one-row call when every model's queue is at its bound, else
        None. The gate asks before it reads a Translator request: a call that can only be
        refused is refused before it costs a read, a parse and a validation (under overload
        those refusals, not decoding, filled the event loop: docs/reliability.md). The turn is
        taken in the default model's line, the one a call without a model name joins."""
        for model in self._models.values():
            scheduler = model.scheduler
            if scheduler.queued_rows < scheduler.config.max_queue:
                return None
        default = self.get()
        scheduler = default.scheduler
        default.observer.request_rejected("queue_full")
        return QueueFull(scheduler.queued_rows, scheduler.config.max_queue, scheduler.retry.refused(1), 1)

    def specs(self) -> list[str]:
        return [f"{m.name}/{m.version}" for m in self._models.values()]

    def warm_up(self) -> None:
        """Run every runner once at its configured sizes (blocking: run it in a thread)."""
        for model in self._models.values():
            model.runner.warm_up()

    async def start(self) -> None:
        for model in self._models.values():
            await model.scheduler.start()

    async def stop(self, grace_s: float) -> None:
        """Drain every scheduler at once: new work is refused, running work gets `grace_s`."""
        await asyncio.gather(*(m.scheduler.stop(grace_s) for m in self._models.values()))
