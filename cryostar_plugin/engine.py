"""Calls to the CryoSTAR engine from Scipion's own process: always a subprocess, JSON back.

The plugin never imports ``cryostar_engine`` or torch.  What it needs to know before a run (the
engine's version, its settings, a model's frame and low-pass suggestion) comes from an engine
command's output, run exactly as the protocols' jobs run it (:meth:`Plugin.getProgram`, i.e.
through ``CRYOSTAR_ENV_ACTIVATION`` when set, with :meth:`Plugin.getEnviron`).

Every failure becomes :class:`EngineCallError` with one line: the engine's own
``cryostar-engine: error: …`` line when it gave one, else what went wrong (not found, timed out,
not JSON) and the command that was run.
"""
import json
import shlex
import subprocess

from .constants import CRYOSTAR_ENV_ACTIVATION, ENGINE_ERROR_PREFIX

__all__ = ["EngineCallError", "engineOutput", "engineJson", "probeEngine", "VERSION_TIMEOUT_S"]

#: Seconds allowed to ``cryostar-engine --version`` (it imports torch: a few seconds).
VERSION_TIMEOUT_S = 60
#: Seconds allowed to the JSON queries (settings, inspect-model).
JSON_TIMEOUT_S = 300

_PROBES = {}


class EngineCallError(RuntimeError):
    """An engine command failed; ``str(err)`` is one line for the user."""


def _lastLine(text):
    lines = [ln.strip() for ln in (text or "").replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln[len(ENGINE_ERROR_PREFIX):].strip() for ln in lines
              if ln.startswith(ENGINE_ERROR_PREFIX)]
    return errors[-1] if errors else (lines[-1] if lines else "")


def engineOutput(subcommand, args=(), timeout=JSON_TIMEOUT_S):
    """Run ``cryostar-engine <subcommand> <args>`` and return its stdout.

    Parameters
    ----------
    subcommand : e.g. ``"inspect-model"`` or ``"--version"``.
    args : further arguments (quoted here).
    timeout : seconds before the command is abandoned.

    Raises
    ------
    EngineCallError : non-zero exit, timeout or missing shell; one line.
    """
    from . import Plugin

    program = Plugin.getProgram(subcommand)
    command = " ".join([program] + [shlex.quote(str(a)) for a in args])
    try:
        done = subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True,
                              text=True, timeout=timeout, env=Plugin.getEnviron())
    except subprocess.TimeoutExpired:
        raise EngineCallError(f"`{command}` did not answer within {timeout} s") from None
    except OSError as err:
        raise EngineCallError(f"`{command}` could not start: {err}") from None
    if done.returncode != 0:
        why = _lastLine(done.stderr) or _lastLine(done.stdout) or "no message"
        raise EngineCallError(f"{why} (`{command}` exited with status {done.returncode})")
    return done.stdout


def engineJson(subcommand, args=(), timeout=JSON_TIMEOUT_S):
    """Run an engine command that prints one JSON object; return it as a dict."""
    text = engineOutput(subcommand, args, timeout)
    try:
        return json.loads(text)
    except ValueError:
        raise EngineCallError(f"cryostar-engine {subcommand} printed no JSON: "
                              f"{_lastLine(text)[:200]!r}") from None


def probeEngine():
    """``(version, problem)`` of the engine reached through the current activation.

    version : e.g. ``"0.1.0"``, or ``""`` when the engine cannot be run.
    problem : None, or one line saying what is missing and what to do.

    The answer is cached per engine command (the activation and interpreter it names), so the
    GUI asking for every protocol costs one subprocess.
    """
    from . import Plugin

    key = Plugin.getProgram("--version")
    if key not in _PROBES:
        try:
            words = engineOutput("--version", timeout=VERSION_TIMEOUT_S).split()
            _PROBES[key] = (words[-1] if words else "", None)
        except EngineCallError as err:
            where = (f"the environment activated by {CRYOSTAR_ENV_ACTIVATION}"
                     if Plugin.usesSeparateEnv() else "Scipion's Python")
            _PROBES[key] = ("", f"The CryoSTAR engine cannot be run from {where}: {err}. "
                                f"Install it there (pip install scipion-em-cryostar), or set "
                                f"{CRYOSTAR_ENV_ACTIVATION} to a command that activates an "
                                "environment that has it.")
    return _PROBES[key]
