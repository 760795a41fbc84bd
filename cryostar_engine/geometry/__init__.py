"""Geometry conventions: RELION Euler angles and rotation matrices."""
from .poses import euler_to_matrix, matrix_to_euler, rotate_points

__all__ = ["euler_to_matrix", "matrix_to_euler", "rotate_points"]
