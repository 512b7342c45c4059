"""Ports and state-directory rules of the local target."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indmlops.errors import IndMLOpsError, StateDirError
from indmlops.targets.local.layout import (
    DEFAULT_PORTS,
    Layout,
    StackConfig,
    parse_port_overrides,
    ports_from_environment,
    resolve_ports,
)


@given(st.dictionaries(st.sampled_from(sorted(DEFAULT_PORTS)), st.integers(1, 65535), max_size=5))
def test_port_overrides_parse_back_to_the_same_mapping(overrides):
    text = ",".join(f"{k}={v}" for k, v in overrides.items())
    assert parse_port_overrides(text, "test") == overrides


@pytest.mark.parametrize("text,fragment", [
    ("mqtt=1883", "expected NAME=PORT with NAME one of"),
    ("mosquitto", "expected NAME=PORT"),
    ("mosquitto=0", "port must be 1-65535"),
    ("mosquitto=99999", "port must be 1-65535"),
    ("mosquitto=abc", "port must be 1-65535"),
])
def test_port_override_rejected_with_origin_when_malformed(text, fragment):
    with pytest.raises(IndMLOpsError, match=fragment) as err:
        parse_port_overrides(text, "--port")
    assert "from --port" in str(err.value)


def test_ports_shift_together_when_offset_given():
    ports = resolve_ports(1000)
    assert all(ports[k] == v + 1000 for k, v in DEFAULT_PORTS.items())


def test_ports_rejected_when_two_services_share_one():
    with pytest.raises(IndMLOpsError, match="same port"):
        resolve_ports(0, {"mlflow": DEFAULT_PORTS["mosquitto"]})


def test_ports_rejected_when_offset_leaves_range():
    with pytest.raises(IndMLOpsError, match="out of range"):
        resolve_ports(60000)


def test_state_dir_error_names_path_when_parent_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateDirError, match=r"state directory .*file/state is not writable"):
        Layout(blocker / "state").ensure()


def test_state_dir_error_when_socket_path_too_long(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with pytest.raises(StateDirError, match="too deep"):
        Layout(deep).ensure()


def test_credentials_kept_when_config_recreated(tmp_path):
    first = StackConfig.create(tmp_path, dict(DEFAULT_PORTS))
    first.layout.ensure()
    first.save()
    again = StackConfig.create(tmp_path, resolve_ports(5))
    assert again.credentials == first.credentials
    assert again.ports["mosquitto"] == DEFAULT_PORTS["mosquitto"] + 5
    assert (tmp_path / "stack.json").stat().st_mode & 0o777 == 0o600


def test_stack_file_error_says_what_to_do_when_corrupt(tmp_path):
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(IndMLOpsError, match="not valid JSON .* remove it and run `indmlops up`"):
        StackConfig.load(tmp_path)


def test_ports_from_environment_shift_and_override_like_the_cli():
    ports = ports_from_environment({"INDMLOPS_PORT_OFFSET": "600", "INDMLOPS_PORTS": "mlflow=15000"},
                                   ["mosquitto=11883"])
    assert ports["postgres"] == DEFAULT_PORTS["postgres"] + 600
    assert (ports["mlflow"], ports["mosquitto"]) == (15000, 11883)
    assert ports_from_environment({}) is None


def test_ports_from_environment_rejects_offset_naming_the_variable():
    with pytest.raises(IndMLOpsError, match="INDMLOPS_PORT_OFFSET 'x' from environment"):
        ports_from_environment({"INDMLOPS_PORT_OFFSET": "x"})
