"""The README's two set-up commands: the test command does the whole set-up (system packages
included) and `.ci/run` runs exactly it; the quickstart command needs only Python."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCRIPT = ROOT / "tests" / "install_system_packages.sh"


def _block_after(marker_pattern: str) -> str:
    return re.search(marker_pattern + r"\s*```bash\n(.*?)```", README, re.S).group(1).strip()


def test_the_test_command_installs_the_system_packages_first_and_ci_runs_exactly_it():
    command = _block_after(r"<!-- test-command -->")
    assert command.startswith("bash tests/install_system_packages.sh && python3 -m venv .venv")
    assert command.endswith(".venv/bin/python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci                  # CI sets up nothing the README command does not
    extracted = subprocess.run(
        ["awk", '/<!-- test-command -->/{found=1; next} found && /^```bash/{inblock=1; next} '
                'inblock && /^```/{exit} inblock{print}', "README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert extracted == command and re.search(r"awk '/<!-- test-command -->/", ci)


def test_the_quickstart_command_needs_only_python():
    first = re.search(r"## Set up on a fresh machine.*?```bash\n(.*?)```", README, re.S).group(1)
    assert first.strip().split(" && ")[0] == "python3 -m venv .venv"
    assert "apt-get" not in first and "install_system_packages" not in first


def test_the_package_script_installs_nothing_when_every_package_is_there():
    # the test suite itself runs after the script, so on this machine everything is there
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_the_package_script_names_what_is_missing_when_it_cannot_install(tmp_path):
    # a PATH with bash and the shell tools but no psql, sqlite3, docker-compose, apt-get or sudo
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "id", "env", "true"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    out = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True,
                         timeout=60, env={"PATH": str(bin_dir)})
    assert out.returncode == 1
    assert "sqlite3" in out.stderr and "docker-compose" in out.stderr
    assert "no apt-get" in out.stderr and len(out.stderr.strip().splitlines()) == 1
