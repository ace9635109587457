"""The 50 Metaworld v3 tasks: language instructions, benchmark groups and episode limits (no metaworld import).

`TASKS` maps metaworld's task name (`ENV_POLICY_MAP` / `ALL_V3_ENVIRONMENTS` key) to the instruction that
becomes `env.task_description` and the per-episode `task` string in a store. `MT10` and `MT50` are
metaworld's multi-task groups, in metaworld's order (tests compare them with `metaworld.env_dict`).
"""

from __future__ import annotations

# task name -> language instruction
TASKS: dict[str, str] = {
    "assembly-v3": "pick up the nut and place it onto the peg",
    "basketball-v3": "pick up the basketball and dunk it into the basket",
    "bin-picking-v3": "pick up the puck from one bin and place it into the other bin",
    "box-close-v3": "pick up the lid and place it on the box",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "reach over the wall and press the button from the top",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "reach around the wall and press the button",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug out from under the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "pick the nut off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock down",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door by turning the lock",
    "hand-insert-v3": "insert the gripper into the hole",
    "drawer-close-v3": "push the drawer closed",
    "drawer-open-v3": "pull the drawer open",
    "faucet-open-v3": "turn the faucet handle to open the faucet",
    "faucet-close-v3": "turn the faucet handle to close the faucet",
    "hammer-v3": "pick up the hammer and hammer the nail into the wall",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck, move it over the wall and place it at the goal",
    "pick-out-of-hole-v3": "pick the puck up out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the goal",
    "plate-slide-side-v3": "slide the plate sideways into the goal",
    "plate-slide-back-v3": "slide the plate back out of the goal",
    "plate-slide-back-side-v3": "slide the plate sideways back out of the goal",
    "peg-insert-side-v3": "pick up the peg and insert it sideways into the hole",
    "peg-unplug-side-v3": "pull the peg sideways out of the hole",
    "soccer-v3": "push the ball into the goal",
    "stick-push-v3": "pick up the stick and push the thermos to the goal with it",
    "stick-pull-v3": "pick up the stick and pull the thermos to the goal with it",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "push-back-v3": "push the puck back to the goal",
    "reach-v3": "reach the goal with the gripper",
    "reach-wall-v3": "reach over the wall to the goal with the gripper",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}

# metaworld.env_dict.MT10_V3
MT10: list[str] = [
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
]

# metaworld.env_dict.MT50_V3 (all v3 tasks)
MT50: list[str] = list(TASKS)

GROUPS: dict[str, list[str]] = {"MT10": MT10, "MT50": MT50}

# Control steps per episode (80 Hz: 300 steps are 3.75 s). Metaworld's own horizon is 500; its scripted
# experts need 35-135 steps on average and finish 95% of episodes within 250, except push-back-v3, whose
# slow push needs up to ~400 (benchmarks/results/metaworld_experts.json, 50 seeds per task).
MAX_EPISODE_STEPS = 300
LONG_TASKS: dict[str, int] = {"push-back-v3": 500}


def max_episode_steps(task: str) -> int:
    """The registered episode limit of `task` (`MAX_EPISODE_STEPS` unless it is one of `LONG_TASKS`)."""
    return LONG_TASKS.get(task, MAX_EPISODE_STEPS)


def env_id(task: str) -> str:
    """`pick-place-v3` -> `robolearn/metaworld-pick-place-v3`."""
    return f"robolearn/metaworld-{task}"
