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
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


if "pyworkflow" not in sys.modules:
    _headless_scipion_env()
