"""Geometry conventions: RELION Euler angles, rotation matrices, the model's frame in the box."""
from .frames import Frame, check_model_centre, frame_problem, map_frame_offset, map_size_problem
from .poses import (cryosparc_pose_to_euler, cryosparc_pose_to_matrix, euler_to_matrix,
                    matrix_to_euler, rotate_points)

__all__ = ["euler_to_matrix", "matrix_to_euler", "rotate_points", "cryosparc_pose_to_matrix",
           "cryosparc_pose_to_euler", "Frame", "check_model_centre",
           "frame_problem", "map_frame_offset", "map_size_problem"]
