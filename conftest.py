"""Repository-wide pytest setup: a headless, throw-away Scipion environment.

pyworkflow reads its configuration when it is first imported, so this runs before any test
module (and before ``cryostar_plugin``, which imports pwem) is imported.  Values already in the
environment win.  Engine tests are unaffected (they never import pyworkflow).
"""
import atexit
import os
import shutil
import sys
import tempfile


#: Names the Scipion root this file made, so that pytest-xdist workers (which inherit the
#: controller's environment) make their own instead of sharing the controller's projects.
OWN_ROOT = "CRYOSTAR_TEST_SCIPION_ROOT"


def _headless_scipion_env():
    root = tempfile.mkdtemp(prefix="scipion-test-")
    atexit.register(shutil.rmtree, root, True)
    hosts = os.path.join(root, "config", "hosts.conf")
    os.makedirs(os.path.dirname(hosts))
    with open(hosts, "w") as f:
        f.write("[localhost]\nPARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n")
    defaults = {"SCIPION_DOMAIN": "pwem", "SCIPION_HOME": root, "SCIPION_HOSTS": hosts,
                "SCIPION_USER_DATA": os.path.join(root, "ScipionUserData"),
                "SCIPION_PYTHON": sys.executable, "SCIPION_TEST_NOSYNC": "1",
                "SCIPION_NOTIFY": "False"}
    inherited = os.environ.get(OWN_ROOT) == os.environ.get("SCIPION_HOME") is not None
    for key, value in defaults.items():
        if inherited:
            os.environ[key] = value          # an xdist worker: its own projects
        else:
            os.environ.setdefault(key, value)
    os.environ[OWN_ROOT] = os.environ["SCIPION_HOME"]


if "pyworkflow" not in sys.modules:
    _headless_scipion_env()


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist, what ``make test`` runs): give each worker its own
    share of this process's cores (``os.sched_setaffinity``), so that N workers never run more
    threads than the machine has cores.  The engine sizes its thread pools from the affinity,
    and every subprocess a test starts inherits it."""
    worker = getattr(config, "workerinput", None)
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(worker.get("workercount", 1))
    index = int(str(worker.get("workerid", "gw0")).lstrip("gw") or 0)
    mine = cores[index % len(cores)::count] if count <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, mine)
    os.environ["OMP_NUM_THREADS"] = str(len(mine))
    os.environ["MKL_NUM_THREADS"] = str(len(mine))
