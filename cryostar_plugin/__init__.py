"""Scipion plugin for CryoSTAR: conformational heterogeneity with an atomic-model prior.

The protocols convert Scipion objects into files, run the ``cryostar_engine`` command line in a
subprocess and register its results.  Scipion's process never imports the engine (nor torch):
what the forms and wizards need from it comes from engine commands' JSON output
(:mod:`cryostar_plugin.engine`).  Where the engine runs:

* by default with the Python interpreter that runs the protocol (``sys.executable``), i.e. the
  engine installed next to this plugin (``pip install scipion-em-cryostar`` installs both);
* in a separate environment when ``CRYOSTAR_ENV_ACTIVATION`` is set (scipion.conf ``[PLUGINS]``
  or the environment), e.g. ``conda activate cryostar-0.1.0``; ``CONDA_ACTIVATION_CMD`` is then
  put in front, as for other plugins, and Scipion's ``PYTHONPATH`` is dropped.
"""
import os
import re
import shlex
import sys

import pwem
import pyworkflow.utils as pwutils

from .constants import (CRYOSTAR_ENV_ACTIVATION, DEFAULT_VERSION, ENGINE_MODULE, PLUGIN_NAME,
                        VERSIONS, getCryoStarEnvName)

__version__ = "0.1.0"
_logo = "cryostar_logo.png"
_references = ["Li2024cryostar"]


def formatGpuList(gpus):
    """GPU ids as the comma-separated string ``CUDA_VISIBLE_DEVICES`` expects.

    Parameters
    ----------
    gpus : None, a list of ints/strings, or a string such as ``"0 1"`` or ``"0,1"``.

    Returns
    -------
    str or None : ``"0,1"``; None when ``gpus`` is None or empty (leave the variable unset).
    """
    if gpus is None:
        return None
    items = re.split(r"[\s,]+", gpus.strip()) if isinstance(gpus, str) else [str(g) for g in gpus]
    items = [g for g in items if g != ""]
    for g in items:
        if not g.isdigit():
            raise ValueError(f"GPU id '{g}' is not a non-negative integer")
    return ",".join(items) or None


# Engine sub-commands that train with DistributedDataParallel under torchrun (one process per GPU).
DISTRIBUTED_COMMANDS = ("train-atom", "train-density")


def countGpus(gpus):
    """Number of GPU ids in ``gpus`` (any form :func:`formatGpuList` accepts); 0 for None."""
    ids = formatGpuList(gpus)
    return len(ids.split(",")) if ids else 0


class Plugin(pwem.Plugin):
    _url = "https://github.com/scipion-em/scipion-em-cryostar"
    _supportedVersions = VERSIONS

    def getName(self):
        """The name Scipion shows: protocol labels read "cryostar - train atom generator".

        pyworkflow defaults to the Python module of this class (``cryostar_plugin``); the
        package keeps that name (entry point, imports), only what users read changes.
        """
        return PLUGIN_NAME

    @classmethod
    def _defineVariables(cls):
        cls._defineVar(CRYOSTAR_ENV_ACTIVATION, "",
                       description="Shell command activating a separate environment with the "
                                   "CryoSTAR engine (e.g. 'conda activate cryostar-0.1.0'). Empty: "
                                   "run the engine with Scipion's own Python.")

    # --------------------------------------------------------------- where the engine runs
    @classmethod
    def getActivationCmd(cls):
        """The activation command, stripped ('' when the engine shares Scipion's Python)."""
        return (cls.getVar(CRYOSTAR_ENV_ACTIVATION) or "").strip()

    @classmethod
    def usesSeparateEnv(cls):
        """True when CRYOSTAR_ENV_ACTIVATION is set: the engine runs in its own environment."""
        return bool(cls.getActivationCmd())

    @classmethod
    def getEnviron(cls):
        """Environment for the engine subprocess.

        With a separate environment Scipion's ``PYTHONPATH`` is dropped so that it cannot leak
        packages into it; with the shared interpreter the environment is kept as it is.
        """
        env = pwutils.Environ(os.environ)
        if cls.usesSeparateEnv():
            env.pop("PYTHONPATH", None)
        return env

    @classmethod
    def getEnginePython(cls):
        """The interpreter running the engine: ``sys.executable``, or ``python`` of the env."""
        return "python" if cls.usesSeparateEnv() else sys.executable

    @classmethod
    def getProgram(cls, subcommand, gpus=None):
        """Shell command (without the sub-command's arguments) that runs one engine sub-command.

        Parameters
        ----------
        subcommand : e.g. ``"train-atom"``, ``"check-inputs"``.
        gpus : GPU ids (see :func:`formatGpuList`); when given, ``CUDA_VISIBLE_DEVICES`` is set
            for the engine only.  None leaves the variable as it is (CPU runs, or all GPUs).
            With several ids, the training sub-commands (:data:`DISTRIBUTED_COMMANDS`) run
            under ``torchrun`` with one process per GPU (DistributedDataParallel).

        Returns
        -------
        str : e.g. ``CUDA_VISIBLE_DEVICES=0 /venv/bin/python -m cryostar_engine train-atom``,
        ``CUDA_VISIBLE_DEVICES=0,1 /venv/bin/python -m torch.distributed.run --standalone
        --nproc_per_node=2 -m cryostar_engine train-atom``, or ``<CONDA_ACTIVATION_CMD> conda
        activate cryostar-0.1.0 && CUDA_VISIBLE_DEVICES=0 python -m cryostar_engine train-atom``
        with a separate environment.
        """
        cvd = formatGpuList(gpus)
        cvd = f"CUDA_VISIBLE_DEVICES={cvd} " if cvd else ""
        python = shlex.quote(cls.getEnginePython())
        nproc = countGpus(gpus) if subcommand in DISTRIBUTED_COMMANDS else 1
        launcher = (f"{python} -m torch.distributed.run --standalone --nproc_per_node={nproc} "
                    if nproc > 1 else f"{python} ")
        engine = f"{cvd}{launcher}-m {ENGINE_MODULE} {subcommand}"
        if not cls.usesSeparateEnv():
            return engine
        conda = cls.getCondaActivationCmd() or ""
        return f"{conda} {cls.getActivationCmd()} && {engine}".strip()

    @classmethod
    def getActiveVersion(cls, home=None, versions=None):
        """Version of the engine that the protocols would run (``cryostar-engine --version``,
        run in a subprocess through the same activation as the jobs); '' when it cannot run."""
        from .engine import probeEngine
        return probeEngine()[0]

    @classmethod
    def validateInstallation(cls):
        """One line when the engine cannot be run as the protocols run it, else nothing.

        Runs ``cryostar-engine --version`` in a subprocess (short timeout, answer cached), so a
        wrong ``CRYOSTAR_ENV_ACTIVATION`` or an environment without the engine is reported
        before any protocol starts; Scipion's own process never imports the engine.
        """
        from .engine import probeEngine
        problem = probeEngine()[1]
        return [problem] if problem else []

    # --------------------------------------------------------------- installation
    @classmethod
    def defineBinaries(cls, env):
        """``scipion installb cryostar``: an optional conda environment with the engine.

        Not installed by default: the engine already runs with Scipion's Python.  After
        installing, set ``CRYOSTAR_ENV_ACTIVATION = conda activate cryostar-<version>``.
        """
        conda = cls.getCondaActivationCmd() or ""
        for version in VERSIONS:
            envName = getCryoStarEnvName(version)
            flag = f"cryostar_{version}_installed"
            cmd = (f"{conda} conda create -y -n {envName} python=3.10 && "
                   f"conda activate {envName} && "
                   f"pip install 'torch>=2.1' && "
                   f"pip install 'scipion-em-cryostar=={version}' && touch {flag}")
            env.addPackage("cryostar", version=version, tar="void.tgz",
                           commands=[(cmd.strip(), flag)],
                           neededProgs=[] if conda else ["conda"],
                           default=False,
                           vars={"PATH": os.environ.get("PATH", "")})


__all__ = ["Plugin", "formatGpuList", "__version__", "DEFAULT_VERSION"]
