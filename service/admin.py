"""The Admin gRPC service: hot model reload (service/reload.py does the work). Who may call it is
the call gate's business (service/gate.py): the `admin` token scope, or loopback without tokens."""

from __future__ import annotations

import grpc

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.errors import FieldViolation, InvalidRequest
from service.registry import ModelRegistry
from service.reload import ModelReloader
from service.status import maps_service_errors


def _spec(name_version: str) -> pb.ModelSpec:
    name, _, version = name_version.rpartition("/")
    return pb.ModelSpec(name=name, version=version)


def serving(registry: ModelRegistry) -> list[pb.ModelSpec]:
    return [pb.ModelSpec(name=m.name, version=m.version) for m in registry.models]


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, reloader: ModelReloader):
        self.reloader = reloader

    @maps_service_errors
    async def ReloadModels(self, request: pb.ReloadModelsRequest, context: grpc.aio.ServicerContext):
        report = await self.reloader.reload()
        return pb.ReloadModelsResponse(
            loaded=[_spec(s) for s in report.loaded],
            unloaded=[_spec(s) for s in report.unloaded],
            refused=[pb.RefusedBundle(path=path, reason=reason) for path, reason in report.refused],
            serving=serving(self.reloader.registry),
        )

    @maps_service_errors
    async def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext):
        bad = [
            FieldViolation(f"model.{name}", "is required")
            for name in ("name", "version")
            if not getattr(request.model, name)
        ]
        if bad:
            raise InvalidRequest(bad)
        await self.reloader.unload(request.model.name, request.model.version)
        return pb.UnloadModelResponse(serving=serving(self.reloader.registry))
