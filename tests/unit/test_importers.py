"""hac.toml, service.yaml and spawn flags become AIAgents the models accept, with warnings for
what has no meaning on Kubernetes and errors that name the line or field at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.frontends import importers
from agentfleet.frontends.importers import InvalidFile, InvalidSpec, SpawnOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"


def test_hypercore_hac_toml_becomes_an_agent_with_its_resources() -> None:
    imported = importers.load(FIXTURES / "market-intelligence.hac.toml", "team-a")

    body = imported.body
    assert body["apiVersion"] == c.API_VERSION and body["kind"] == c.KIND
    assert body["metadata"]["name"] == "market-intelligence-agent"
    assert body["metadata"]["namespace"] == "team-a"
    assert body["metadata"]["annotations"] == {
        importers.ANNOTATION_DESCRIPTION: "AI agent for real-time market analysis",
        importers.ANNOTATION_IMPORTED_FROM: "market-intelligence.hac.toml",
    }
    assert body["spec"] == {
        "agentType": "custom",
        "image": "docker.io/my-org/market-intelligence-agent:latest",
        "resources": {"requests": {"cpu": "2", "memory": "2048Mi"}, "limits": {"memory": "2048Mi"}},
    }
    AIAgent.from_body(body)  # what the operator will parse


def test_hac_toml_microvm_fields_are_warned_about_with_their_lines() -> None:
    imported = importers.load(FIXTURES / "market-intelligence.hac.toml", "default")

    source = str(FIXTURES / "market-intelligence.hac.toml")
    by_field = {w.split(": ", 1)[1].split(" ")[0]: w for w in imported.warnings}
    assert set(by_field) == {"[hardware].kernel", "[hardware].drive", "[hardware].interface"}
    assert by_field["[hardware].kernel"].startswith(f"{source}:9: ")
    assert by_field["[hardware].drive"].startswith(f"{source}:10: ")
    assert by_field["[hardware].interface"].startswith(f"{source}:12: ")
    assert all("no meaning on Kubernetes" in w for w in imported.warnings)
    assert "RuntimeClass" in by_field["[hardware].kernel"]


def test_hac_toml_with_a_bad_value_names_line_and_field() -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.load(FIXTURES / "invalid-cores.hac.toml", "default")
    assert caught.value.line == 5
    assert caught.value.field == "[hardware].cores"
    assert "'two'" in caught.value.message
    assert str(caught.value).startswith(f"{FIXTURES / 'invalid-cores.hac.toml'}:5: ")


def test_hac_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.load(FIXTURES / "syntax-error.hac.toml", "default")
    assert caught.value.line == 7
    assert "not valid TOML" in caught.value.message


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        ('[spacecore]\nname = "x"\n[hardware]\ncores = 1\n', "[hardware].ref", 3),
        ('[hardware]\nref = "img:1"\n', "[spacecore].name", None),
        (
            '[spacecore]\nname = "x"\n[hardware]\nref = "i:1"\nmemory = true\n',
            "[hardware].memory",
            5,
        ),
        ('[spacecore]\nname = "!!!"\n[hardware]\nref = "i:1"\n', "[spacecore].name", 2),
    ],
)
def test_hac_toml_missing_or_wrong_fields(text: str, field: str, line: int | None) -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.from_hac_toml(text)
    assert (caught.value.field, caught.value.line) == (field, line)


def test_hac_toml_unknown_sections_and_keys_are_warned_not_silent() -> None:
    text = '[spacecore]\nname = "a"\ncolour = "red"\n[hardware]\nref = "i:1"\n[network]\nx = 1\n'
    imported = importers.from_hac_toml(text, "h.toml")
    assert imported.warnings == [
        "h.toml:6: [network] is not a hac.toml section agentfleet knows; ignored",
        "h.toml:3: [spacecore].colour is unknown; ignored",
    ]


def test_name_flag_overrides_the_hac_toml_name() -> None:
    imported = importers.load(FIXTURES / "market-intelligence.hac.toml", "x", name="market")
    assert imported.name == "market"


def test_deploy_agent_service_yaml_becomes_a_gpu_agent() -> None:
    imported = importers.load(FIXTURES / "yolo-service.yaml", "vision")

    spec = imported.body["spec"]
    assert imported.name == "yolo-service"
    assert spec["image"] == "tidybot/yolo-service:0.2.0"
    assert spec["gpu"] == {"count": 1, "vram": "8Gi"}
    assert spec["env"] == [{"name": "MODEL", "value": "yoloe-11l-seg.pt"}]
    assert spec["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]
    assert spec["volumeMounts"] == [{"name": "models", "mountPath": "/app/models"}]
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    assert spec["probes"]["readiness"]["httpGet"] == probe["httpGet"]
    assert spec["probes"]["liveness"]["httpGet"] == probe["httpGet"]
    assert spec["probes"]["readiness"] is not spec["probes"]["liveness"]
    assert imported.ready_timeout == 120
    AIAgent.from_body(imported.body)


def test_service_yaml_port_that_is_not_a_fixed_port_is_warned_about() -> None:
    imported = importers.load(FIXTURES / "yolo-service.yaml", "vision")
    port_warnings = [w for w in imported.warnings if w.startswith("port 8010")]
    assert len(port_warnings) == 1
    assert "8080" in port_warnings[0]
    echo = importers.load(FIXTURES / "echo-service.yaml", "x")
    assert not [w for w in echo.warnings if w.startswith("port")]


def test_service_yaml_env_values_become_strings() -> None:
    echo = importers.load(FIXTURES / "echo-service.yaml", "x")
    assert echo.body["spec"]["env"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "WORKERS", "value": "2"},
    ]


def test_service_yaml_with_a_bad_value_names_line_and_field() -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.load(FIXTURES / "invalid-port.service.yaml", "default")
    assert (caught.value.line, caught.value.field) == (3, "port")
    assert "integer" in caught.value.message


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        ("name: a\n", "image", None),
        ("image: i:1\n", "name", None),
        ("name: Not_A_Label\nimage: i:1\n", "name", 1),
        ("name: a\nimage: i:1\ngpu: true\nvram_gb: 0\n", "vram_gb", 4),
        ("name: a\nimage: i:1\nvolumes: [models]\n", "volumes[0]", 3),
        ("name: a\nimage: i:1\nhealth: health\n", "health", 3),
        ("name: a\nimage: i:1\nenv: {A: [1]}\n", "env.A", 3),
        ("name: a\nimage: i:1\nready_timeout: soon\n", "ready_timeout", 3),
        ("name: a\nimage: i:1\ngpu: yes please\n", "gpu", 3),
    ],
)
def test_service_yaml_invalid_fields(text: str, field: str, line: int | None) -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.from_service_yaml(text)
    assert (caught.value.field, caught.value.line) == (field, line)


def test_service_yaml_syntax_error_and_non_mapping() -> None:
    with pytest.raises(InvalidFile) as caught:
        importers.from_service_yaml("name: a\nimage: [i\n")
    assert caught.value.line is not None and "not valid YAML" in caught.value.message
    with pytest.raises(InvalidFile, match="must be a mapping"):
        importers.from_service_yaml("- name: a\n")


def test_service_yaml_unknown_fields_host_paths_and_stray_vram_are_warned() -> None:
    text = (
        "name: a\nimage: i:1\nreplicas: 3\nvram_gb: 4\n"
        "volumes: [/srv/data:/data, cache:/cache:ro]\n"
    )
    imported = importers.from_service_yaml(text, "s.yaml")
    assert imported.warnings[0] == "s.yaml:3: replicas is not a service.yaml field; ignored"
    assert any("vram_gb: 4 is ignored because gpu is false" in w for w in imported.warnings)
    assert any("host path /srv/data" in w for w in imported.warnings)
    spec = imported.body["spec"]
    assert "gpu" not in spec
    assert spec["volumeMounts"] == [{"name": "cache", "mountPath": "/cache", "readOnly": True}]


def test_unknown_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.ini"
    path.write_text("[x]\n")
    with pytest.raises(InvalidFile, match="unknown file type"):
        importers.load(path, "default")


# --- values and spawn flags --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [("2048", "2048Mi"), (512, "512Mi"), ("4Gi", "4Gi"), ("1.5G", "1.5G")],
)
def test_memory_bare_numbers_are_mebibytes_as_in_hypercore(
    given_value: str | int, expected: str
) -> None:
    assert importers.memory(given_value) == expected


@pytest.mark.parametrize(
    ("given_value", "expected"), [("24", "24Gi"), (8, "8Gi"), (7.5, "7680Mi"), ("80Gi", "80Gi")]
)
def test_vram_bare_numbers_are_gibibytes(given_value: str | float, expected: str) -> None:
    assert importers.vram(given_value) == expected


@pytest.mark.parametrize("bad", ["lots", "-1", "0", "2 GB"])
def test_bad_sizes_are_refused_naming_the_flag(bad: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        importers.memory(bad, "--mem")
    assert caught.value.field == "--mem"


def test_env_pairs() -> None:
    assert importers.env_list(["A=1", "B=x=y", "A=2", "C="]) == [
        {"name": "A", "value": "2"},
        {"name": "B", "value": "x=y"},
        {"name": "C", "value": ""},
    ]
    with pytest.raises(InvalidSpec, match="NAME=VALUE"):
        importers.env_list(["NOVALUE"])


def test_port_mappings_to_fixed_ports_need_no_warning() -> None:
    assert importers.port_warnings(["8080:8080", "9090", 8081], "a") == []
    assert len(importers.port_warnings(["80:3000"], "a")) == 1
    with pytest.raises(InvalidSpec):
        importers.port_warnings(["http"], "a")


def test_spawn_spec_maps_every_flag() -> None:
    options = SpawnOptions(
        image="img:1",
        agent_type="coding",
        cpu="2",
        memory="4Gi",
        gpu=2,
        vram="24Gi",
        env=[{"name": "A", "value": "1"}],
        replicas=3,
        min_replicas=1,
        max_replicas=5,
        runtime_class="kata",
    )
    spec = importers.validated_spec(importers.spawn_spec(options))
    assert spec == {
        "agentType": "coding",
        "image": "img:1",
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        "gpu": {"count": 2, "vram": "24Gi"},
        "env": [{"name": "A", "value": "1"}],
        "replicas": 3,
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5},
        "runtimeClassName": "kata",
    }


def test_vram_alone_means_one_gpu() -> None:
    spec = importers.spawn_spec(SpawnOptions(image="i", vram="16Gi"))
    assert spec["gpu"] == {"count": 1, "vram": "16Gi"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (SpawnOptions(image="i", agent_type="wizard"), "spec.agentType"),
        (SpawnOptions(image="i", replicas=-1), "spec.replicas"),
        (SpawnOptions(image="i", max_replicas=0), "spec.autoscaling.maxReplicas"),
        (SpawnOptions(image="i", gpu=17), "spec.gpu.count"),
        (SpawnOptions(image="i", runtime_class="Kata!"), "spec.runtimeClassName"),
        (SpawnOptions(image=""), "spec.image"),
    ],
)
def test_invalid_spawn_options_are_refused_naming_the_field(
    options: SpawnOptions, field: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        importers.validated_spec(importers.spawn_spec(options))
    assert caught.value.field.startswith(field)


def test_cross_field_rules_are_left_to_the_api_server() -> None:
    """CEL rules (min <= max, vram needs a GPU) live in the CRD only: one place per rule. The
    API server refuses them on create (tests/integration/test_cli.py)."""
    spec = importers.spawn_spec(SpawnOptions(image="i", min_replicas=5, max_replicas=2))
    assert importers.validated_spec(spec)["autoscaling"]["minReplicas"] == 5


def test_agent_names_must_be_dns_labels() -> None:
    importers.check_name("a-1")
    for bad in ("A", "1a", "a_b", "a-", "x" * 64, ""):
        with pytest.raises(InvalidSpec):
            importers.check_name(bad)


@given(st.text(max_size=80))
def test_dns_name_is_always_a_valid_name_or_empty(text: str) -> None:
    name = importers.dns_name(text)
    assert name == "" or (importers.NAME_PATTERN.match(name) and len(name) <= 63)


def test_dns_name_of_a_hypercore_title() -> None:
    assert importers.dns_name("Market Intelligence Agent") == "market-intelligence-agent"
    assert importers.dns_name("  42 Things__To-Do!! ") == "things-to-do"


# --- hostile files: every one is exit code 2 naming the line or field, never a traceback ----

HAC = "[spacecore]\nname = 'a'\n[hardware]\nref = 'i'\n"
SERVICE = "name: a\nimage: i\n"

HOSTILE = [
    # (file name, content, where the message points, what it says)
    ("big.hac.toml", HAC + "memory = " + "9" * 5000 + "\n", ":5:", "5000 digits"),
    ("bigtext.hac.toml", HAC + "memory = '" + "9" * 5000 + "'\n", ":5:", "5000 digits"),
    ("long.hac.toml", HAC + "memory = '" + "9" * 100 + "'\n", ":5:", "longer than 64"),
    ("exp.hac.toml", HAC + "cores = '1e999999'\n", ":5:", "[hardware].cores"),
    ("inf.hac.toml", HAC + "cores = 1e400\n", ":5:", "whole number or a quantity"),
    ("neg.hac.toml", HAC + "memory = '-1Gi'\n", ":5:", "positive"),
    ("deep.hac.toml", HAC + "x = " + "[" * 20000 + "]" * 20000 + "\n", ":5:", "nested"),
    ("utf8.hac.toml", b"[spacecore]\nname = 'a\xff'\n", ":2:", "not UTF-8"),
    ("table.hac.toml", "hardware = 3\n", "[hardware]", "must be a table"),
    ("big.yaml", SERVICE + "gpu: true\nvram_gb: " + "9" * 5000 + "\n", ":4:", "5000 digits"),
    ("deep.yaml", SERVICE + "env: " + "[" * 20000 + "]" * 20000 + "\n", ":3:", "nested"),
    ("deep.json", '{"name": "a", "env": ' + '{"a": ' * 5000 + "1" + "}" * 5001, ":1:", "nested"),
    ("indent.yaml", SERVICE + "".join(" " * i + "a:\n" for i in range(0, 400, 2)), ":", "nested"),
    ("utf8.yaml", b"name: a\nimage: i\nhealth: /h\xff\n", ":3:", "not UTF-8"),
    ("type.yaml", "name: [1]\nimage: i\n", ":1:", "must be a string"),
    ("env.yaml", SERVICE + "env: {A: [1]}\n", ":3:", "env.A"),
    ("port.yaml", SERVICE + "port: " + "9" * 30 + "\n", ":3:", "port"),
    ("timeout.yaml", SERVICE + "ready_timeout: " + "9" * 30 + "\n", ":3:", "ready_timeout"),
    ("vram.yaml", SERVICE + "gpu: true\nvram_gb: 1.0e+308\n", ":4:", "vram_gb"),
    ("huge.yaml", "#" * (2 * 1024 * 1024), "huge.yaml", "larger than"),
]


@pytest.mark.parametrize(("name", "content", "where", "what"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_files_are_refused_naming_the_line_or_field(
    tmp_path: Path, name: str, content: str | bytes, where: str, what: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InvalidFile) as refused:
        importers.load(path, "default")
    assert where in str(refused.value) and what in str(refused.value), str(refused.value)


def test_the_cli_turns_a_hostile_file_into_exit_code_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentfleet.main import app

    runner = CliRunner()
    for name, content, _, what in HOSTILE:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        result = runner.invoke(app, ["import", str(path), "--dry-run"])
        assert result.exit_code == 2, (name, result.output, result.exception)
        assert what in result.stderr, (name, result.stderr)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--mem", "9" * 5000),
        ("--mem", "1e999999"),
        ("--cpu", "-1"),
        ("--cpu", "100000"),
        ("--vram", "9" * 400),
        ("--vram", "2Ti"),
        ("--port", "9" * 5000),
        ("--gpu", "9" * 5000),
        ("--replicas", "99999999999999999999"),
    ],
)
def test_spawn_flags_out_of_range_are_usage_errors(flag: str, value: str) -> None:
    from typer.testing import CliRunner

    from agentfleet.main import app

    result = CliRunner().invoke(app, ["spawn", "a", "--image", "i", flag, value, "--dry-run"])
    assert result.exit_code == 2, (result.output, result.exception)
