"""The command line: help everywhere, config errors, version."""
import os

from conftest import run_cli


def test_help_everywhere():
    r = run_cli("--help")
    assert r.returncode == 0 and "usage" in r.stdout
    for sub in ("up", "serve", "health", "status", "config"):
        r = run_cli(sub, "--help")
        assert r.returncode == 0, sub
        assert "usage: autobot " + sub in r.stdout, sub


def test_unknown_command_and_role():
    r = run_cli("frobnicate")
    assert r.returncode == 64 and "unknown command" in r.stderr
    r = run_cli("serve", "nosuchrole")
    assert r.returncode == 64 and "unknown role" in r.stderr
    r = run_cli("serve", "browser")
    assert r.returncode == 1 and "not built" in r.stderr


def test_version():
    r = run_cli("version")
    assert r.returncode == 0 and r.stdout.startswith("autobot ")


def test_config_check_error_names_file_line_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("services:\n  coordinator:\n    port: 99999\n")
    r = run_cli("config", "check", "--config", str(p))
    assert r.returncode == 1
    assert str(p) in r.stderr and ":3:" in r.stderr and "services.coordinator.port" in r.stderr
    p.write_text("servics:\n  x: 1\n")
    r = run_cli("config", "check", "--config", str(p))
    assert r.returncode == 1 and "servics" in r.stderr and ":1:" in r.stderr


def test_config_show_redacts(tmp_path):
    env = dict(os.environ, AUTOBOT_SERVICES_REDIS_PASSWORD="very-secret-pw",
               AUTOBOT_STATE_DIR=str(tmp_path))
    r = run_cli("config", "show", env=env)
    assert r.returncode == 0
    assert "very-secret-pw" not in r.stdout and "[redacted]" in r.stdout


def test_reference_layout_loads():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = run_cli("config", "check", "--config", os.path.join(root, "config", "distributed.yaml"))
    assert r.returncode == 0, r.stderr
