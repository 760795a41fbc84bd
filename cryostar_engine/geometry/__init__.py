"""Geometry conventions: RELION Euler angles, rotation matrices, the model's frame in the box."""
from .frames import check_model_centre, map_frame_offset
from .poses import euler_to_matrix, matrix_to_euler, rotate_points

__all__ = ["euler_to_matrix", "matrix_to_euler", "rotate_points", "check_model_centre",
           "map_frame_offset"]
