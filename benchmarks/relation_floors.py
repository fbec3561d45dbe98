"""What the relation family demands: vision alone or language alone does not solve it.

Two floors on the same held-out layouts of builtin-pick-place with sim.options.relations:
1. a policy that ignores the image: the blind mean-trajectory baseline (the one every run's
   report shows), fitted on the expert's demos of the training layouts;
2. a policy that ignores the instruction but sees the scene perfectly: the scripted expert
   told a relation drawn at random from the family, judged at the true target. It succeeds
   where the draw matches, about 1/(number of relations).

    python benchmarks/relation_floors.py                    # 4 relations, 200 + 100 layouts
    python benchmarks/relation_floors.py --relations on below --held-out 400
"""

from __future__ import annotations

import argparse

import numpy as np

from rdtflow.evaluate.closed_loop import run_closed_loop
from rdtflow.evaluate.policies import MeanTrajectoryPolicy
from rdtflow.evaluate.stats import rate_with_interval
from rdtflow.sim.builtin import CAMERA, make_env
from rdtflow.sim.expert import expert_actions, sample_aim_offsets
from rdtflow.sim.pick_place import RELATION_OFFSETS, PickPlaceBatch, ResetState, TaskSettings


def expert_run(settings: TaskSettings, resets: list[ResetState], rng: np.random.Generator) -> tuple[PickPlaceBatch, list]:
    """The expert's rollout of each layout, and the actions it took (steps, B, 3)."""
    scenes = PickPlaceBatch.from_resets(settings, resets)
    offsets = sample_aim_offsets(len(resets), settings.expert_noise, rng)
    actions = []
    while not scenes.done.all():
        action = expert_actions(scenes, offsets, rng)
        actions.append(action)
        scenes.step(action)
    return scenes, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relations", nargs="+", default=["on", "left of", "right of", "above"],
                        choices=list(RELATION_OFFSETS))
    parser.add_argument("--train", type=int, default=200, help="layouts the baseline is fitted on")
    parser.add_argument("--held-out", type=int, default=100, help="layouts both floors are measured on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = make_env([CAMERA], {"relations": args.relations})
    rng = np.random.default_rng(args.seed)
    states = [env.sample_reset(rng) for _ in range(args.train + args.held_out)]
    train = [ResetState.from_dict(state) for state in states[:args.train]]
    held_out = states[args.train:]

    scenes, actions = expert_run(env.settings, train, rng)
    trajectories = [np.stack([step[index] for step in actions[:scenes.steps[index]]]).astype(np.float32)
                    for index in range(len(train))]
    baseline = MeanTrajectoryPolicy.fit(trajectories, horizon=16)
    rollouts = run_closed_loop(baseline, env, held_out, [env.episode_instruction(s) for s in held_out], [CAMERA],
                               execute_horizon=8, img_history=1)
    blind = rate_with_interval([outcome["success"] for outcome in rollouts.outcomes])

    truth = [ResetState.from_dict(state) for state in held_out]
    guesses = [ResetState(r.gripper, r.object, r.goal, args.relations[int(rng.integers(len(args.relations)))])
               for r in truth]
    guessed, _ = expert_run(env.settings, guesses, rng)
    at_true_target = np.linalg.norm(guessed.obj - np.array([r.target() for r in truth]), axis=1)
    ignoring = rate_with_interval(list(at_true_target < env.settings.goal_tolerance))

    print(f"relations: {', '.join(args.relations)}; {args.train} training and {args.held_out} held-out layouts")
    for name, rate in (("blind baseline (ignores the image)", blind),
                       ("expert told a random relation (ignores the instruction)", ignoring)):
        low, high = rate["interval"]
        print(f"{name:58s} {rate['rate']:6.1%} [{low:.1%}, {high:.1%}] ({rate['successes']}/{rate['n']})")
    print(f"chance of the random relation matching: {1 / len(args.relations):.1%}")


if __name__ == "__main__":
    main()
