"""One grammar per value type: sizes, durations, booleans, ports."""
import pytest

from pyramid_app.settings import load
from pyramid_app.units import (MAX_DURATION, MAX_SIZE, BadValue, TooLarge, duration_to_seconds, parse_bool,
                               port_problem, size_to_bytes)


@pytest.mark.parametrize("text, size", [("10MiB", 10 * 1024**2), ("10M", 10 * 1024**2), ("1kib", 1024),
                                        ("1P", MAX_SIZE), ("1024T", MAX_SIZE)])
def test_sizes_take_binary_unit_names_too(text, size):
    assert size_to_bytes(text) == size


@pytest.mark.parametrize("text, error", [("1.5P", TooLarge), ("9" * 5000, TooLarge), ("10MB", BadValue),
                                         ("10iB", BadValue), (" 10M", BadValue)])
def test_sizes_beyond_the_grammar_or_the_bound_are_refused(text, error):
    with pytest.raises(error):
        size_to_bytes(text)


def test_durations_are_bounded_by_a_year():
    assert duration_to_seconds("365d") == MAX_DURATION == duration_to_seconds(MAX_DURATION)
    for value in ("366d", "99999999999999h", "9" * 5000, MAX_DURATION + 1):
        with pytest.raises(TooLarge, match="longer than 365d"):
            duration_to_seconds(value)


@pytest.mark.parametrize("text, value", [("true", True), (" YES ", True), ("On", True), ("1", True),
                                         ("false", False), ("no", False), ("OFF", False), ("0", False)])
def test_booleans(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "y"])
def test_other_booleans_are_refused(text):
    with pytest.raises(BadValue):
        parse_bool(text)


def test_settings_use_the_same_grammars(tmp_path):
    settings = load({"provisioner.var_dir": str(tmp_path), "provisioner.max_body_size": " 1.5M ",
                     "provisioner.handle_signals": "off"}, environ={"PROVISIONER_START_DISPATCHER": "No"})
    assert settings["provisioner.max_body_size"] == 1024 * 1024 * 3 // 2
    assert settings["provisioner.handle_signals"] is False and settings["provisioner.start_dispatcher"] is False
    for bad in ({"provisioner.max_body_size": "10 furlongs"}, {"provisioner.max_body_size": "2P"},
                {"provisioner.handle_signals": "sometimes"}):
        with pytest.raises(ValueError, match="provisioner."):
            load(dict(bad, **{"provisioner.var_dir": str(tmp_path)}), environ={})


@pytest.mark.parametrize("port, ok", [(1, True), (65535, True), ("22", True), ("0022", True), (0, False),
                                      (65536, False), ("99999", False), ("9" * 50, False), ("ssh", False),
                                      (True, False), (22.0, False), ("２２", False)])
def test_ports(port, ok):
    assert (port_problem(port) is None) is ok
