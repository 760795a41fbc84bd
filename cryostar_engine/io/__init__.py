"""File formats: RELION star files, cryoSPARC .cs files, MRC maps and stacks, atomic models;
atomic writes."""
from .atomic import atomic_path, write_text_atomic
from .cryosparc import load_cs, read_cryosparc, write_cs_subsets
from .mrc import MapData, StackCache, read_map, stack_shape, write_mrc
from .pdb import Beads, read_beads, write_beads_pdb
from .relion import ParticleMetadata, read_particles, read_star_tables

__all__ = ["atomic_path", "write_text_atomic", "MapData", "StackCache", "read_map", "stack_shape",
           "write_mrc", "Beads", "read_beads", "write_beads_pdb", "ParticleMetadata",
           "read_particles", "read_star_tables", "load_cs", "read_cryosparc", "write_cs_subsets"]
