"""gym-aloha's bimanual ViperX tasks (transfer cube, insertion) as rdtflow simulators, with a scripted expert.

MUJOCO_GL is set here, before any submodule imports MuJoCo, because MuJoCo picks its GL
backend once, at import: headless EGL unless the user chose another.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
