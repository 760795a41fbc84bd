"""Names shared by the cryostar_plugin modules: configuration variables, versions, labels.

Nothing here imports Scipion, so the constants can be read anywhere (tests, docs, the engine
side of a future bridge).
"""

# --- configuration variables (scipion.conf [PLUGINS] or the environment) --------------------
#: Shell command that activates a separate environment holding the engine, e.g.
#: ``conda activate cryostar-0.1.0``.  Empty (the default): run the engine with the same Python
#: interpreter that runs the protocol (``sys.executable``).
CRYOSTAR_ENV_ACTIVATION = "CRYOSTAR_ENV_ACTIVATION"

# --- engine versions --------------------------------------------------------------------------
V0_1_0 = "0.1.0"
VERSIONS = [V0_1_0]
DEFAULT_VERSION = V0_1_0


def getCryoStarEnvName(version=DEFAULT_VERSION):
    """Name of the conda environment that ``scipion installb cryostar`` creates for ``version``."""
    return f"cryostar-{version}"


#: What to put in CRYOSTAR_ENV_ACTIVATION after ``scipion installb cryostar``.
DEFAULT_ACTIVATION_CMD = f"conda activate {getCryoStarEnvName(DEFAULT_VERSION)}"

# --- engine command line ----------------------------------------------------------------------
#: Module run with ``python -m`` (identical to the ``cryostar-engine`` console script).
ENGINE_MODULE = "cryostar_engine"
#: Prefix of the one-line user error the engine prints on stderr before exiting with status 2.
ENGINE_ERROR_PREFIX = "cryostar-engine: error:"

# --- labels and extra attribute names ---------------------------------------------------------
#: The plugin's name in the GUI (protocol labels "cryostar - …", the threads row).
PLUGIN_NAME = "cryostar"
#: FlexHub program name stored in SetOfParticlesFlex / SetOfAtomStructFlex outputs.
CRYOSTAR = "CryoSTAR"
#: Extra attributes (prefixed by the plugin name, see the plugin guide §15).
Z_VALUES = "_cryostarZ"
CHECKPOINT = "_cryostarCheckpoint"
CONFIG = "_cryostarConfig"
#: Folder of the training run (engine run folder) in a FlexInfo / on output sets.
RUN_DIR = "_cryostarRunDir"
#: Per-item extras of the atomic-structure and volume outputs.
KIND = "_cryostarKind"            # "kmeans" (cluster centre) or "pca" (trajectory point)
PC = "_cryostarPC"                # 1-based principal component of a trajectory point
FRAME = "_cryostarFrame"          # 0-based position along the trajectory
CLUSTER = "_cryostarCluster"      # 0-based k-means state (cluster order of the analysis)
CLUSTER_SIZE = "_cryostarClusterSize"  # particles in that state
PARTICLE_ROW = "_cryostarParticleRow"  # 0-based star row of the real particle the point snaps to
PARTICLE_ID = "_cryostarParticleId"    # its Scipion particle id
#: Attribute of a SetOfAtomStructs that pwem's ChimeraViewer opens instead of its own script.
CHIMERA_SCRIPT = "_chimeraScript"

# --- subset selection (ProtCryoStarSubset.selectBy) ------------------------------------------
SELECT_CLUSTERS = 0
SELECT_PC_RANGE = 1
