"""Put this folder on ``PYTHONPATH`` of a Scipion process: importing ``cryostar_engine`` or
``torch`` there raises ImportError.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that has
one, so every process started with this ``PYTHONPATH`` (the test's Scipion process and the
protocols' step processes) is blocked.  The engine's own process is not: the plugin drops
``PYTHONPATH`` when it activates the engine's environment (``CRYOSTAR_ENV_ACTIVATION``).
"""
import sys

BLOCKED = ("cryostar_engine", "torch")


class _BlockEngineImports:
    """A meta-path finder that refuses the blocked top-level packages."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"import of {name!r} blocked: Scipion's process must not "
                                      "import the CryoSTAR engine or torch", name=name)
        return None


sys.meta_path.insert(0, _BlockEngineImports())
