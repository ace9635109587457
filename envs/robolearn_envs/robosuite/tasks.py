"""The four robosuite tasks: instructions, episode limits and `state` layouts (no robosuite import).

`TASKS` maps our short task name (the id suffix of `robolearn/robosuite-<task>`) to a `Task`: robosuite's
environment name, the instruction that becomes `env.task_description`, the registered episode limit and
the robosuite observation keys concatenated into `state` after the proprio block. The env checks at
construction that robosuite still produces these keys with these sizes, so a robosuite upgrade that
changes them fails loudly instead of shifting columns.
"""

from __future__ import annotations

from dataclasses import dataclass

# Robot proprioception at the front of every `state`, as (robosuite observation key, size):
# eef position (world, m), eef orientation (robosuite's `robot0_eef_quat`, xyzw), finger joint positions (m).
PROPRIO: tuple[tuple[str, int], ...] = (("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2))


@dataclass(frozen=True)
class Task:
    """One robosuite task as a robolearn env."""

    env_name: str
    """robosuite environment name passed to `robosuite.make`."""
    description: str
    """language instruction: `env.task_description` and the per-episode `task` in a store."""
    max_episode_steps: int
    """gymnasium TimeLimit in control steps (20 Hz); about twice what the scripted expert needs."""
    objects: tuple[tuple[str, int], ...]
    """object observation keys (robosuite's `object-state` order) and sizes; positions world frame, quats xyzw."""


TASKS: dict[str, Task] = {
    "lift": Task(
        env_name="Lift",
        description="pick up the red cube and lift it",
        max_episode_steps=200,
        objects=(("cube_pos", 3), ("cube_quat", 4), ("gripper_to_cube_pos", 3)),
    ),
    "stack": Task(
        env_name="Stack",
        description="pick up the red cube and stack it on the green cube",
        max_episode_steps=300,
        objects=(("cubeA_pos", 3), ("cubeA_quat", 4), ("cubeB_pos", 3), ("cubeB_quat", 4),
                 ("cubeA_to_cubeB", 3), ("gripper_to_cubeA", 3), ("gripper_to_cubeB", 3)),
    ),
    "pickplacecan": Task(
        env_name="PickPlaceCan",
        description="pick up the can and place it in its bin",
        max_episode_steps=400,
        objects=(("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4), ("Can_pos", 3), ("Can_quat", 4)),
    ),
    "nutassemblysquare": Task(
        env_name="NutAssemblySquare",
        description="pick up the square nut and fit it onto the square peg",
        max_episode_steps=400,
        objects=(("SquareNut_to_robot0_eef_pos", 3), ("SquareNut_to_robot0_eef_quat", 4), ("SquareNut_pos", 3),
                 ("SquareNut_quat", 4)),
    ),
}


def env_id(task: str) -> str:
    return f"robolearn/robosuite-{task}"


def state_layout(task: str) -> list[tuple[str, int, int]]:
    """`state` columns of `task` as (robosuite key, start, stop): proprio first, then the task's objects."""
    layout, start = [], 0
    for key, size in (*PROPRIO, *TASKS[task].objects):
        layout.append((key, start, start + size))
        start += size
    return layout


# task -> [(robosuite key, start, stop)] of its `state` vector (Do = last stop: lift 19, stack 32, can 23, square 23)
STATE_LAYOUT: dict[str, list[tuple[str, int, int]]] = {task: state_layout(task) for task in TASKS}
