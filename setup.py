"""scipion-em-cryostar: the CryoSTAR engine (cryostar_engine) and its Scipion plugin (cryostar_plugin)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "cryostar_engine" / "__init__.py").read_text(), version)

setup(
    name="scipion-em-cryostar",
    version=version["__version__"],
    description="CryoSTAR conformational heterogeneity with an atomic-model prior: "
                "a PyTorch engine and a Scipion plugin",
    long_description=(here / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="GPL-3.0-or-later",
    python_requires=">=3.9",
    packages=find_packages(include=["cryostar_engine*", "cryostar_plugin*"]),
    package_data={"cryostar_plugin": ["protocols.conf", "*.png", "engine_settings/*.json"]},
    include_package_data=True,
    install_requires=[
        # torch: any CUDA or CPU build >= 2.1; install the build you want first.
        "torch>=2.1",
        "numpy",
        "mrcfile",
        "starfile",
        "biopython",
        "scikit-learn",
        "scipy",
        "matplotlib",
        "scipion-pyworkflow",
        "scipion-em",
        "scipion-em-relion",
    ],
    extras_require={"umap": ["umap-learn"], "test": ["pytest", "pytest-xdist"]},
    entry_points={
        "console_scripts": ["cryostar-engine = cryostar_engine.cli:main"],
        "pyworkflow.plugin": ["cryostar_plugin = cryostar_plugin"],
    },
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering"],
)
