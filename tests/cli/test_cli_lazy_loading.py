"""One command imports only the module that registers it (pachctl.main.COMMAND_MODULES)."""
import subprocess
import sys
from pathlib import Path

import click

from pachctl.main import ALL_MODULES, COMMAND_MODULES, VERB_MODULES, _module_for, cli

ROOT = Path(__file__).resolve().parents[2]  # the checkout, whichever directory a test runs in


def test_the_table_names_the_module_of_every_registered_command():
    seen = 0
    for verb, group in cli.commands.items():
        if verb in VERB_MODULES:
            continue
        assert isinstance(group, click.Group), verb
        for noun, cmd in group.commands.items():
            assert _module_for([verb, noun]) == cmd.callback.__module__.split(".")[-1], f"{verb} {noun}"
            seen += 1
    assert seen > 40


def test_plurals_global_flags_and_partial_commands():
    assert _module_for(["list", "repos"]) == "cmd_repo"
    assert _module_for(["list", "branches"]) == "cmd_repo"
    assert _module_for(["-v", "--rpc-timeout", "5s", "put", "file", "a@b:/c"]) == "cmd_transfer"
    assert _module_for(["--no-color", "--rpc-timeout=5s", "config", "get"]) == "cmd_config"
    assert _module_for(["--rpc-timeout"]) is None
    for partial in ([], ["list"], ["list", "--help"], ["--help"], ["list", "nothing"], ["-x", "list", "repo"]):
        assert _module_for(partial) is None, partial
    assert set(VERB_MODULES.values()) <= set(ALL_MODULES) | {"cmd_logs"}


def test_a_single_command_imports_only_its_module():
    code = ("import sys\nfrom pachctl.main import load_commands, _module_for\n"
            "load_commands((_module_for(['put', 'file']),))\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('pachctl.cmd_'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["pachctl.cmd_transfer"]


def test_every_module_runs_its_command_from_a_fresh_interpreter():
    """One command per module, each as the console script runs it (a fresh interpreter
    that loads only that module and what it imports): it parses and shows its help."""
    first = {m: cs[0].split() for m, cs in COMMAND_MODULES.items()}
    first.update({m: [v] for v, m in VERB_MODULES.items() if m not in first})
    for module, args in first.items():
        p = subprocess.run([sys.executable, "-m", "pachctl", *args, "--help"], capture_output=True, text=True,
                           cwd=ROOT)
        assert p.returncode == 0 and p.stdout.startswith("Usage: pachctl "), (module, p.stderr[-2000:])


def test_unmount_of_one_mountpoint_runs_without_click_or_grpc_and_says_what_the_full_cli_says(tmp_path):
    lean = ("import sys\nfrom pachctl import main\n"
            "try:\n    main.main(['unmount', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, 'click' in sys.modules, 'grpc' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", lean, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split() == ["1", "False", "False"], r.stdout + r.stderr
    full = ("import sys\nfrom pachctl.main import load_commands\n"
            "load_commands(('cmd_mount',)).main(args=['unmount', sys.argv[1]], prog_name='pachctl')")
    f = subprocess.run([sys.executable, "-c", full, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert f.returncode == 1
    assert r.stderr == f.stderr == f"{tmp_path} is not mounted\n"
