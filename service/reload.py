"""Hot model reload: versions appear and disappear while the server serves (the Admin service
and SIGHUP call this; service/admin.py is the gRPC side).

`reload()` re-reads the configured bundle paths. A version that appeared is loaded in a thread
(checksums verified by load_bundle, ONNX Runtime sessions built, graphs warmed up) and only then
added to the registry, so no call ever meets a cold or half-loaded model; one that fails any of
that is refused with its reason and nothing else changes. A version that disappeared leaves the
registry at once (new calls go to the newest version left) and is unloaded once the calls that
already hold it have finished, up to the grace period. Reloads run one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.sessions import ProviderUnavailable, RunnerConfig
from s2s.bundle import Bundle, BundleError, load_bundle
from service.registry import LoadedModel, ModelRegistry, ObserverFactory, open_model, resolve_bundle_dirs
from service.scheduler import SchedulerConfig

log = logging.getLogger(__name__)


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)  # "name/version"
    unloaded: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (bundle path, reason)


class ModelReloader:
    def __init__(
        self,
        registry: ModelRegistry,
        paths: tuple[Path, ...],
        runner: RunnerConfig,
        scheduler: SchedulerConfig,
        observer_for: ObserverFactory,
        grace_s: float,
        on_change: Callable[[ReloadReport], Awaitable[None]] | None = None,
    ):
        self.registry = registry
        self.paths = paths
        self.runner = runner
        self.scheduler = scheduler
        self.observer_for = observer_for
        self.grace_s = grace_s  # how long an unloaded version's calls may take to finish
        self.on_change = on_change  # told after each reload or unload (health, metrics)
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task] = set()

    async def reload(self) -> ReloadReport:
        async with self._lock:
            report = ReloadReport()
            try:
                found = await asyncio.to_thread(resolve_bundle_dirs, self.paths)
            except BundleError as exc:  # the paths hold nothing now: keep serving what is loaded
                report.refused.append((", ".join(map(str, self.paths)) or "(default bundle)", str(exc)))
                return report
            present = set()
            for path in found:
                key = await self._load_if_new(path, report)
                if key is not None:
                    present.add(key)
            for model in self.registry.models:
                if (model.name, model.version) not in present and len(self.registry.models) > 1:
                    self._retire(self.registry.remove(model.name, model.version))
                    report.unloaded.append(f"{model.name}/{model.version}")
            log.info("reload: loaded %s, unloaded %s, refused %d", report.loaded or "none",
                     report.unloaded or "none", len(report.refused))  # fmt: skip
            if self.on_change is not None:
                await self.on_change(report)
            return report

    async def _load_if_new(self, path: Path, report: ReloadReport) -> tuple[str, str] | None:
        """Load `path` unless its name/version is loaded already; its key, or None if refused."""
        try:
            bundle = await asyncio.to_thread(load_bundle, path)  # checksums verified here
        except BundleError as exc:
            report.refused.append((str(path), str(exc)))
            log.error("reload: refused %s: %s", path, exc)
            return None
        key = (bundle.name, bundle.version)
        loaded = {(m.name, m.version): m for m in self.registry.models}
        if key in loaded:
            if loaded[key].bundle.path.resolve() != Path(path).resolve():
                reason = f"{bundle.name}/{bundle.version} is already loaded from {loaded[key].bundle.path}"
                report.refused.append((str(path), reason))
            return key
        try:
            model = await asyncio.to_thread(self._open_and_warm, bundle)
        except (BundleError, ProviderUnavailable) as exc:
            report.refused.append((str(path), str(exc)))
            log.error("reload: refused %s: %s", path, exc)
            return None
        await model.scheduler.start()
        self.registry.add(model)
        report.loaded.append(f"{model.name}/{model.version}")
        return key

    def _open_and_warm(self, bundle: Bundle) -> LoadedModel:
        model = open_model(bundle, self.runner, self.scheduler, self.observer_for)
        try:
            model.runner.warm_up()  # before the decode loop starts: one thread drives a runner
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own types: the graphs do not run
            model.observer.remove()
            raise BundleError(f"bundle {bundle.path}: its graphs fail when run: {exc}") from exc
        return model

    async def unload(self, name: str, version: str) -> None:
        """Take name/version out of service now; its calls in progress finish (grace period)."""
        async with self._lock:
            self._retire(self.registry.remove(name, version))
            if self.on_change is not None:
                await self.on_change(ReloadReport(unloaded=[f"{name}/{version}"]))

    def _retire(self, model: LoadedModel) -> None:
        task = asyncio.ensure_future(self._drain(model))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain(self, model: LoadedModel) -> None:
        await model.scheduler.stop(self.grace_s)  # waits for the calls that hold it
        model.observer.remove()
        log.info("unloaded %s/%s", model.name, model.version)

    async def settled(self) -> None:
        """Wait until every retired version has been unloaded (tests; shutdown)."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)
