from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DesiredState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DESIRED_STATE_UNSPECIFIED: _ClassVar[DesiredState]
    DESIRED_STATE_RUNNING: _ClassVar[DesiredState]
    DESIRED_STATE_STOPPED: _ClassVar[DesiredState]

class WorkloadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKLOAD_STATE_UNSPECIFIED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_PENDING: _ClassVar[WorkloadState]
    WORKLOAD_STATE_RUNNING: _ClassVar[WorkloadState]
    WORKLOAD_STATE_STOPPED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_FAILED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_DELETING: _ClassVar[WorkloadState]
DESIRED_STATE_UNSPECIFIED: DesiredState
DESIRED_STATE_RUNNING: DesiredState
DESIRED_STATE_STOPPED: DesiredState
WORKLOAD_STATE_UNSPECIFIED: WorkloadState
WORKLOAD_STATE_PENDING: WorkloadState
WORKLOAD_STATE_RUNNING: WorkloadState
WORKLOAD_STATE_STOPPED: WorkloadState
WORKLOAD_STATE_FAILED: WorkloadState
WORKLOAD_STATE_DELETING: WorkloadState

class WorkloadStatus(_message.Message):
    __slots__ = ("id", "namespace", "type", "revision_id", "desired_state", "state", "reason", "message", "replicas", "ready_replicas", "endpoint", "generation", "observed_generation")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REVISION_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    type: str
    revision_id: str
    desired_state: DesiredState
    state: WorkloadState
    reason: str
    message: str
    replicas: int
    ready_replicas: int
    endpoint: str
    generation: int
    observed_generation: int
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ..., type: _Optional[str] = ..., revision_id: _Optional[str] = ..., desired_state: _Optional[_Union[DesiredState, str]] = ..., state: _Optional[_Union[WorkloadState, str]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., replicas: _Optional[int] = ..., ready_replicas: _Optional[int] = ..., endpoint: _Optional[str] = ..., generation: _Optional[int] = ..., observed_generation: _Optional[int] = ...) -> None: ...

class ApplyWorkloadRequest(_message.Message):
    __slots__ = ("id", "type", "revision_id", "desired_state", "spec", "namespace")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REVISION_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    revision_id: str
    desired_state: DesiredState
    spec: _struct_pb2.Struct
    namespace: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., revision_id: _Optional[str] = ..., desired_state: _Optional[_Union[DesiredState, str]] = ..., spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class ApplyWorkloadResponse(_message.Message):
    __slots__ = ("applied", "skipped", "status")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    skipped: bool
    status: WorkloadStatus
    def __init__(self, applied: _Optional[bool] = ..., skipped: _Optional[bool] = ..., status: _Optional[_Union[WorkloadStatus, _Mapping]] = ...) -> None: ...

class DeleteWorkloadRequest(_message.Message):
    __slots__ = ("id", "namespace")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteWorkloadResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class GetWorkloadStatusRequest(_message.Message):
    __slots__ = ("id", "namespace")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetWorkloadStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkloadStatus
    def __init__(self, status: _Optional[_Union[WorkloadStatus, _Mapping]] = ...) -> None: ...

class ListWorkloadsRequest(_message.Message):
    __slots__ = ("type", "namespace")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    type: str
    namespace: str
    def __init__(self, type: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class ListWorkloadsResponse(_message.Message):
    __slots__ = ("workloads",)
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.RepeatedCompositeFieldContainer[WorkloadStatus]
    def __init__(self, workloads: _Optional[_Iterable[_Union[WorkloadStatus, _Mapping]]] = ...) -> None: ...

class HealthCheckRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthCheckResponse(_message.Message):
    __slots__ = ("healthy", "version", "message")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    version: str
    message: str
    def __init__(self, healthy: _Optional[bool] = ..., version: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class WatchAgentsRequest(_message.Message):
    __slots__ = ("namespace", "type")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    type: str
    def __init__(self, namespace: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("type", "workload")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[AgentEvent.Type]
        ADDED: _ClassVar[AgentEvent.Type]
        MODIFIED: _ClassVar[AgentEvent.Type]
        DELETED: _ClassVar[AgentEvent.Type]
    TYPE_UNSPECIFIED: AgentEvent.Type
    ADDED: AgentEvent.Type
    MODIFIED: AgentEvent.Type
    DELETED: AgentEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    type: AgentEvent.Type
    workload: WorkloadStatus
    def __init__(self, type: _Optional[_Union[AgentEvent.Type, str]] = ..., workload: _Optional[_Union[WorkloadStatus, _Mapping]] = ...) -> None: ...
