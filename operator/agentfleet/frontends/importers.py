"""Agents described the older ways become AIAgents: spawn flags, `hac.toml`, `service.yaml`.

Hypercore (`spawn --cpu --mem --image-ref --ports --env`, `hac.toml`, `POST /spawn`) and the
per-node deploy agent (`service.yaml`, `POST /deploy`) each describe an agent their own way.
Everything here is pure: it builds an AIAgent body, validates its spec with the same models
the CRD is generated from (so a bad value is refused locally, naming the field), and returns
warnings for what has no meaning on Kubernetes instead of dropping it silently.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentfleet.api import constants as c
from agentfleet.api import quantity
from agentfleet.api.models import AgentSpec

# The CRD refuses any other AIAgent name (it names the agent's Service).
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 63
ANNOTATION_DESCRIPTION = f"{c.GROUP}/description"
ANNOTATION_IMPORTED_FROM = f"{c.GROUP}/imported-from"
FIXED_PORTS = {port.number: port for port in c.PORTS}


class InvalidSpec(ValueError):
    """A value the AIAgent API would refuse; `field` names it the way the user wrote it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidFile(ValueError):
    """An import file that cannot become an AIAgent: where (file, line, field) and why."""

    def __init__(
        self, source: str, message: str, line: int | None = None, field: str | None = None
    ) -> None:
        where = source + (f":{line}" if line else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")
        self.source = source
        self.line = line
        self.field = field
        self.message = message


@dataclass
class Imported:
    """An AIAgent ready to create, and what the user should know about the conversion."""

    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    ready_timeout: int | None = None  # seconds, from service.yaml's ready_timeout

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


# --- values ----------------------------------------------------------------------------------


def check_name(name: str, field: str = "name") -> str:
    if len(name) > NAME_MAX or not NAME_PATTERN.match(name):
        raise InvalidSpec(
            field,
            f"{name!r} is not a valid agent name: use lowercase letters, digits and '-', "
            f"start with a letter, end with a letter or digit, at most {NAME_MAX} characters",
        )
    return name


def dns_name(text: str) -> str:
    """'Market Intelligence Agent' -> 'market-intelligence-agent' (a DNS-1035 label)."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    label = re.sub(r"^[^a-z]+", "", label)[:NAME_MAX].rstrip("-")
    return label


def _text(value: str | int | float, field: str) -> str:
    """A value as text, refused when it is longer than any quantity (before any conversion:
    str() of a huge int, or int() of a long digit string, is itself slow or refused)."""
    if isinstance(value, int) and value.bit_length() > 4 * quantity.MAX_LENGTH:
        raise InvalidSpec(field, f"a number of more than {quantity.MAX_LENGTH} digits")
    text = str(value).strip()
    if len(text) > quantity.MAX_LENGTH:
        raise InvalidSpec(field, f"{text[:20]}… is longer than {quantity.MAX_LENGTH} characters")
    return text


def memory(value: str | int, field: str = "mem") -> str:
    """Memory as Hypercore means it: a bare number is MiB ('2048' -> '2048Mi')."""
    text = _text(value, field)
    if re.fullmatch(r"[0-9]+", text) and int(text) > 0:
        return _quantity(f"{text}Mi", field, "e.g. 2048 (MiB) or 4Gi")
    return _quantity(text, field, "e.g. 2048 (MiB) or 4Gi")


def vram(value: str | int | float, field: str = "vram") -> str:
    """VRAM per GPU: a bare number is GiB ('24' -> '24Gi'), as the deploy agent's vram_gb."""
    text = _text(value, field)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        if float(text) <= 0:
            raise InvalidSpec(field, f"{text} must be more than 0")
        mib = max(1, math.ceil(float(text) * 1024))
        return f"{text}Gi" if float(text).is_integer() else f"{mib}Mi"
    return _quantity(text, field, "e.g. 24 (GiB) or 24Gi")


def cpu(value: str | int | float, field: str = "cpu") -> str:
    text = _text(value, field)
    return _quantity(text, field, "e.g. 2 or 500m")


def _quantity(text: str, field: str, example: str) -> str:
    if not quantity.is_quantity(text) or quantity.parse(text) <= 0:
        raise InvalidSpec(field, f"{text!r} is not a positive Kubernetes quantity ({example})")
    return text


# --- hostile files -----------------------------------------------------------------------------

MAX_FILE_BYTES = 1024 * 1024  # a hac.toml or service.yaml is a few hundred bytes
MAX_NESTING = 32  # brackets or indentation levels: these formats are two levels deep
_DIGITS = re.compile(r"[0-9]{4301,}")  # past Python's limit for reading an integer


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text, or InvalidFile naming the line of the first byte that is not."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidFile(source, f"larger than {MAX_FILE_BYTES // 1024} KiB: not an agent file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InvalidFile(
            source, f"not UTF-8 text (byte 0x{data[error.start]:02x})", line
        ) from None


def _check_shape(text: str, source: str) -> None:
    """Refuse what would make the TOML or YAML parser recurse or convert without bound,
    naming the line: nesting deeper than MAX_NESTING, integers Python cannot read."""
    depth = 0
    quote = ""
    for offset, char in enumerate(text):
        if quote:
            if char == quote or char == "\n":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            quote = "\n"  # a comment runs to the end of the line
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise InvalidFile(
                    source, f"nested deeper than {MAX_NESTING} levels", _line_of(text, offset)
                )
        elif char in "]}":
            depth = max(depth - 1, 0)
    for number, line in enumerate(text.splitlines(), start=1):
        indent = len(line) - len(line.lstrip(" "))
        if indent > 2 * MAX_NESTING:
            raise InvalidFile(source, f"nested deeper than {MAX_NESTING} levels", number)
    digits = _DIGITS.search(text)
    if digits:
        raise InvalidFile(
            source,
            f"a number of {len(digits.group())} digits (more than any field can hold)",
            _line_of(text, digits.start()),
        )


def _parsed(parse: Any, text: str, source: str) -> Any:
    """Run a parser on checked text; anything it still cannot take becomes InvalidFile."""
    _check_shape(text, source)
    try:
        return parse(text)
    except (RecursionError, OverflowError, MemoryError) as error:
        raise InvalidFile(source, f"cannot be read ({type(error).__name__})") from None


def env_list(pairs: Iterable[str], field: str = "env") -> list[dict[str, str]]:
    """Hypercore's ["K=V", ...] as Kubernetes env vars."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidSpec(field, f"{pair!r} is not NAME=VALUE")
        result[name] = value
    return [{"name": name, "value": value} for name, value in result.items()]


def env_map(values: Mapping[str, Any], field: str = "env") -> list[dict[str, str]]:
    """The deploy agent's {"K": "V"} as Kubernetes env vars (numbers and booleans as text)."""
    env = []
    for name, value in values.items():
        if isinstance(value, dict | list) or value is None:
            raise InvalidSpec(f"{field}.{name}", "must be a string, number or boolean")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env.append({"name": str(name), "value": text})
    return env


def port_warnings(ports: Iterable[str | int], name: str, field: str = "ports") -> list[str]:
    """Port mappings ('8080:8080', '8010') against the four fixed agent ports.

    Every agent serves the same ports behind its own Service, so a mapping is never needed;
    a container port that is not one of them cannot be reached and is said so."""
    warnings = []
    for raw in ports:
        text = str(raw)
        container = text.rpartition(":")[2]
        if not container.isdigit() or len(container) > 5 or not 0 < int(container) < 65536:
            raise InvalidSpec(field, f"{text!r} is not PORT or HOST_PORT:CONTAINER_PORT")
        number = int(container)
        if number not in FIXED_PORTS:
            fixed = ", ".join(f"{p.number} ({p.name})" for p in c.PORTS)
            warnings.append(
                f"port {text}: agents listen on the fixed ports {fixed}; the container must "
                f"serve HTTP on {c.HTTP.number}, which its Service exposes as "
                f"{name}:{c.HTTP.number} (port {number} is not exposed)"
            )
    return warnings


# --- spec ------------------------------------------------------------------------------------


@dataclass
class SpawnOptions:
    """What Hypercore's `spawn` and agentfleet's `spawn` flags can say about an agent."""

    image: str
    agent_type: str = "custom"
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    vram: str | None = None
    env: list[dict[str, str]] = field(default_factory=list)
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    runtime_class: str | None = None


def spawn_spec(options: SpawnOptions) -> dict[str, Any]:
    """The AIAgent spec for spawn flags; CPU and memory become requests, memory also the limit
    (a Hypercore microVM could never use more than it was given)."""
    spec: dict[str, Any] = {"agentType": options.agent_type, "image": options.image}
    requests = {
        k: v for k, v in (("cpu", options.cpu), ("memory", options.memory)) if v is not None
    }
    if requests:
        spec["resources"] = {"requests": requests}
        if options.memory:
            spec["resources"]["limits"] = {"memory": options.memory}
    if options.gpu is not None or options.vram is not None:
        count = 1 if options.gpu is None else options.gpu
        spec["gpu"] = {"count": count, **({"vram": options.vram} if options.vram else {})}
    if options.env:
        spec["env"] = options.env
    if options.replicas is not None:
        spec["replicas"] = options.replicas
    if options.min_replicas is not None or options.max_replicas is not None:
        scaling: dict[str, Any] = {"enabled": True}
        if options.min_replicas is not None:
            scaling["minReplicas"] = options.min_replicas
        if options.max_replicas is not None:
            scaling["maxReplicas"] = options.max_replicas
        spec["autoscaling"] = scaling
    if options.runtime_class:
        spec["runtimeClassName"] = options.runtime_class
    return spec


def validated_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as given, after the models accept it; else InvalidSpec naming the field."""
    try:
        AgentSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or "spec"
        raise InvalidSpec(f"spec.{path}", first["msg"]) from error
    duplicates = _duplicates(var["name"] for var in spec.get("env") or [])
    if duplicates:
        raise InvalidSpec("spec.env", f"duplicate names: {', '.join(duplicates)}")
    return spec


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


def agent_body(
    name: str,
    namespace: str,
    spec: dict[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete AIAgent, validated: what kubectl would apply."""
    metadata: dict[str, Any] = {"name": check_name(name), "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": metadata,
        "spec": validated_spec(spec),
    }


# --- files -----------------------------------------------------------------------------------

HAC_SECTIONS = {"spacecore": {"name", "description"}, "hardware": {"cores", "memory", "ref"}}
# Fields that describe a microVM, not a container: what they become on Kubernetes.
HAC_VM_FIELDS = {
    "kernel": "the container image brings its own userland and the node its kernel; for a "
    "microVM kernel use a RuntimeClass (spawn --runtime kata)",
    "drive": "the root filesystem is the container image (ref); use volumes for data",
    "interface": "every Pod gets its own network interface; the agent is reached through "
    "its Service",
}

MAX_READY_TIMEOUT = 86400

SERVICE_FIELDS = {
    "name",
    "image",
    "port",
    "gpu",
    "vram_gb",
    "env",
    "volumes",
    "health",
    "ready_timeout",
}


def load(
    path: Path, namespace: str, name: str | None = None, agent_type: str = "custom"
) -> Imported:
    """A hac.toml or service.yaml file as an AIAgent in `namespace`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidFile(str(path), f"cannot read: {error}") from error
    text = _decode(data, str(path))
    if path.suffix == ".toml":
        return from_hac_toml(text, str(path), namespace, name, agent_type)
    if path.suffix in (".yaml", ".yml", ".json"):
        return from_service_yaml(text, str(path), namespace, name, agent_type)
    raise InvalidFile(
        str(path), "unknown file type: expected a Hypercore .toml or a deploy-agent .yaml"
    )


def from_hac_toml(
    text: str,
    source: str = "hac.toml",
    namespace: str = "default",
    name: str | None = None,
    agent_type: str = "custom",
) -> Imported:
    """Hypercore hardware-as-code: [spacecore] name/description, [hardware] cores, memory
    (MiB), ref (image); kernel, drive and interface are microVM details (warned about)."""
    try:
        doc = _parsed(tomllib.loads, text, source)
    except tomllib.TOMLDecodeError as error:
        line = _toml_error_line(str(error))
        raise InvalidFile(source, f"not valid TOML: {error}", line) from error
    except ValueError as error:  # tomllib's own conversions (a number it cannot read)
        if isinstance(error, InvalidFile):
            raise
        raise InvalidFile(source, f"not valid TOML: {error}") from error
    lines = _TomlLines(text)
    warnings: list[str] = []
    for section, value in doc.items():
        if section not in HAC_SECTIONS:
            warnings.append(
                f"{source}:{lines.of(section)}: [{section}] is not a hac.toml "
                "section agentfleet knows; ignored"
            )
        elif not isinstance(value, dict):
            raise InvalidFile(source, "must be a table", lines.of(section), f"[{section}]")
    spacecore = doc.get("spacecore", {})
    hardware = doc.get("hardware", {})

    def fail(section: str, key: str, message: str) -> InvalidFile:
        return InvalidFile(source, message, lines.of(section, key), f"[{section}].{key}")

    for section, table in (("spacecore", spacecore), ("hardware", hardware)):
        for key in table:
            if section == "hardware" and key in HAC_VM_FIELDS:
                warnings.append(
                    f"{source}:{lines.of(section, key)}: [{section}].{key} has no meaning on "
                    f"Kubernetes and was not imported: {HAC_VM_FIELDS[key]}"
                )
            elif key not in HAC_SECTIONS[section]:
                warnings.append(
                    f"{source}:{lines.of(section, key)}: [{section}].{key} is unknown; ignored"
                )

    image = hardware.get("ref")
    if not isinstance(image, str) or not image:
        raise fail("hardware", "ref", "the image reference is required (a string)")
    title = spacecore.get("name")
    if name is None:
        if not isinstance(title, str) or not dns_name(title):
            raise fail("spacecore", "name", "a name is required (or pass --name)")
        name = dns_name(title)
    options = SpawnOptions(image=image, agent_type=agent_type)
    for key, convert in (("cores", cpu), ("memory", memory)):
        if key in hardware:
            value = hardware[key]
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise fail(
                    "hardware", key, f"{value!r} must be a whole number or a quantity string"
                )
            try:
                converted = convert(value, f"[hardware].{key}")
            except InvalidSpec as error:
                raise fail("hardware", key, error.message) from error
            if key == "cores":
                options.cpu = converted
            else:
                options.memory = converted
    annotations = {ANNOTATION_IMPORTED_FROM: Path(source).name}
    description = spacecore.get("description")
    if isinstance(description, str) and description:
        annotations[ANNOTATION_DESCRIPTION] = description
    try:
        body = agent_body(name, namespace, spawn_spec(options), annotations)
    except InvalidSpec as error:
        raise InvalidFile(source, error.message, None, error.field) from error
    return Imported(body, warnings)


def from_service_yaml(
    text: str,
    source: str = "service.yaml",
    namespace: str = "default",
    name: str | None = None,
    agent_type: str = "custom",
) -> Imported:
    """A deploy-agent manifest (the body of its POST /deploy) as an AIAgent."""
    try:
        doc = _parsed(yaml.safe_load, text, source)
        root = _parsed(yaml.compose, text, source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InvalidFile(source, f"not valid YAML: {error}", line) from error
    except ValueError as error:  # the YAML parser's own conversions
        if isinstance(error, InvalidFile):
            raise
        raise InvalidFile(source, f"not valid YAML: {error}") from error
    if not isinstance(doc, dict) or not isinstance(root, yaml.MappingNode):
        raise InvalidFile(source, "must be a mapping of service fields (name, image, port...)")
    lines = {
        str(key.value): key.start_mark.line + 1
        for key, _ in root.value
        if isinstance(key, yaml.ScalarNode)
    }
    warnings = [
        f"{source}:{lines.get(str(key))}: {key} is not a service.yaml field; ignored"
        for key in doc
        if key not in SERVICE_FIELDS
    ]
    try:
        request = ServiceManifest.from_dict(doc)
        if name is not None:
            request.name = check_name(name)
        imported = request.to_agent(namespace, agent_type, Path(source).name)
    except InvalidSpec as error:
        key = error.field.split(".")[0].split("[")[0]
        raise InvalidFile(source, error.message, lines.get(key), error.field) from error
    imported.warnings[:0] = warnings
    return imported


@dataclass
class ServiceManifest:
    """The deploy agent's service.yaml / POST /deploy fields."""

    name: str
    image: str
    port: int | None = None
    gpu: bool = False
    vram_gb: float | None = None
    env: dict[str, Any] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    health: str | None = None
    ready_timeout: int | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ServiceManifest:
        def typed(key: str, kinds: type | tuple[type, ...], what: str) -> Any:
            value = doc.get(key)
            bad_bool = isinstance(value, bool) and bool not in _as_tuple(kinds)
            if value is not None and (bad_bool or not isinstance(value, kinds)):
                raise InvalidSpec(key, f"{value!r} must be {what}")
            return value

        name = typed("name", str, "a string")
        image = typed("image", str, "a string")
        if not name:
            raise InvalidSpec("name", "is required")
        if not image:
            raise InvalidSpec("image", "is required")
        volumes = typed("volumes", list, "a list of NAME:PATH strings") or []
        for index, volume in enumerate(volumes):
            if not isinstance(volume, str):
                raise InvalidSpec(f"volumes[{index}]", f"{volume!r} must be a NAME:PATH string")
        return cls(
            name=check_name(name),
            image=image,
            port=typed("port", int, "an integer"),
            gpu=bool(typed("gpu", bool, "true or false")),
            vram_gb=typed("vram_gb", (int, float), "a number of GB"),
            env=typed("env", dict, "a mapping of NAME: value") or {},
            volumes=volumes,
            health=typed("health", str, "an HTTP path such as /health"),
            ready_timeout=typed("ready_timeout", int, "a number of seconds"),
        )

    def to_agent(
        self, namespace: str, agent_type: str = "custom", source: str | None = None
    ) -> Imported:
        warnings: list[str] = []
        if self.port is not None:
            warnings += port_warnings([self.port], self.name, "port")
        options = SpawnOptions(image=self.image, agent_type=agent_type, env=env_map(self.env))
        if self.gpu:
            options.gpu = 1
            if self.vram_gb is not None:
                options.vram = vram(self.vram_gb, "vram_gb")
        elif self.vram_gb:
            warnings.append(
                f"vram_gb: {self.vram_gb} is ignored because gpu is false (set gpu: true)"
            )
        spec = spawn_spec(options)
        volumes, mounts, volume_warnings = volume_spec(self.volumes)
        warnings += volume_warnings
        if volumes:
            spec["volumes"], spec["volumeMounts"] = volumes, mounts
        if self.health is not None:
            if not self.health.startswith("/"):
                raise InvalidSpec("health", f"{self.health!r} must be an HTTP path such as /health")
            spec["probes"] = health_probes(self.health)
        if self.ready_timeout is not None and not 0 <= self.ready_timeout <= MAX_READY_TIMEOUT:
            raise InvalidSpec("ready_timeout", f"must be 0 to {MAX_READY_TIMEOUT} seconds (a day)")
        annotations = {ANNOTATION_IMPORTED_FROM: source} if source else None
        body = agent_body(self.name, namespace, spec, annotations)
        return Imported(body, warnings, self.ready_timeout)


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def health_probes(path: str) -> dict[str, Any]:
    """The deploy agent waits for GET <health> on the service's own port: readiness and
    liveness become that, on the agent's fixed HTTP port (the service's port is 8080 here)."""

    def probe(**timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": c.HTTP.name}, **timing}

    return {
        "readiness": probe(periodSeconds=5),
        "liveness": probe(periodSeconds=10, failureThreshold=6),
    }


def volume_spec(
    volumes: Iterable[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Docker-style 'NAME:PATH[:ro]' volumes as PersistentVolumeClaim mounts.

    A named volume becomes the claim of that name (it must exist in the namespace); a host
    path has no portable meaning on Kubernetes and is left out with a warning."""
    pod_volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    warnings: list[str] = []
    for index, entry in enumerate(volumes):
        parts = entry.split(":")
        if (
            len(parts) not in (2, 3)
            or not parts[1].startswith("/")
            or (len(parts) == 3 and parts[2] not in ("ro", "rw"))
        ):
            raise InvalidSpec(f"volumes[{index}]", f"{entry!r} is not NAME:/PATH[:ro]")
        source, target = parts[0], parts[1]
        if source.startswith(("/", ".", "~")):
            warnings.append(
                f"volumes[{index}]: host path {source} is not portable across nodes and was "
                f"not imported; use a PersistentVolumeClaim and name it instead"
            )
            continue
        if target in {m["mountPath"] for m in mounts}:
            raise InvalidSpec(f"volumes[{index}]", f"{target} is mounted twice")
        volume = next(
            (v for v in pod_volumes if v["persistentVolumeClaim"]["claimName"] == source), None
        )
        if volume is None:
            volume = {
                "name": dns_name(source) or f"volume-{index}",
                "persistentVolumeClaim": {"claimName": source},
            }
            pod_volumes.append(volume)
        mount: dict[str, Any] = {"name": volume["name"], "mountPath": target}
        if len(parts) == 3 and parts[2] == "ro":
            mount["readOnly"] = True
        mounts.append(mount)
        warnings.append(
            f"volumes[{index}]: {source} is mounted at {target} from the "
            f"PersistentVolumeClaim {source!r}, which must exist in the namespace"
        )
    return pod_volumes, mounts, warnings


class _TomlLines:
    """Line numbers of [tables] and keys in TOML text, to point at the line at fault."""

    def __init__(self, text: str) -> None:
        self.tables: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        table = ""
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            header = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
            if header:
                table = header.group(1).strip().strip('"')
                self.tables.setdefault(table, number)
                continue
            key = re.match(r'^"?([A-Za-z0-9_-]+)"?\s*=', line)
            if key:
                self.keys.setdefault((table, key.group(1)), number)

    def of(self, table: str, key: str | None = None) -> int | None:
        if key is None:
            return self.tables.get(table)
        return self.keys.get((table, key), self.tables.get(table))


def _toml_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None
