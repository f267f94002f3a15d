"""bench/bandit_simulation: Thompson sampling against three policies whose true success rates are
0.3, 0.5 and 0.7, over 2,000 simulated episodes (seeded), averaged over several seeds.

Prints the best policy's traffic share over the last 500 episodes and the cumulative regret at
500, 1,000 and 2,000 episodes, and writes docs/bandit-regret.svg: cumulative regret against
episodes, next to the straight line of choosing uniformly at random. No plotting library: the
SVG is written by hand.

    python bench/bandit_simulation.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tomsip.learn.guard import Guard, GuardConfig  # noqa: E402
from tomsip.learn.simulation import simulate  # noqa: E402

RATES = {"terse": 0.3, "baseline": 0.5, "warm": 0.7}
EPISODES = 2000


def svg(curves: dict[str, tuple[str, np.ndarray]], path: Path) -> None:
    width, height, pad = 640, 400, 50
    top = max(float(c.max()) for _, c in curves.values())
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">episodes</text>',
        f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})"'
        ' text-anchor="middle">cumulative regret</text>',
        f'<text x="{width / 2}" y="25" text-anchor="middle">Thompson sampling, true rates 0.3 / 0.5 / 0.7</text>',
    ]
    for tick in range(0, EPISODES + 1, 500):
        x = pad + (width - 2 * pad) * tick / EPISODES
        lines.append(f'<text x="{x:.0f}" y="{height - pad + 15}" text-anchor="middle">{tick}</text>')
    for tick in np.linspace(0, top, 5):
        y = height - pad - (height - 2 * pad) * tick / top
        lines.append(f'<text x="{pad - 5}" y="{y:.0f}" text-anchor="end">{tick:.0f}</text>')
    for i, (label, (color, curve)) in enumerate(curves.items()):
        step = max(1, len(curve) // 400)
        points = " ".join(
            f"{pad + (width - 2 * pad) * t / EPISODES:.1f},{height - pad - (height - 2 * pad) * curve[t] / top:.1f}"
            for t in range(0, len(curve), step)
        )
        lines.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        lines.append(f'<text x="{pad + 15}" y="{pad + 15 + 16 * i}" fill="{color}">{label}</text>')
    lines.append("</svg>")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    regrets, shares = [], []
    for seed in range(args.seeds):
        result, _ = simulate(RATES, EPISODES, Guard("baseline", GuardConfig(min_samples=0)), seed=seed)
        regrets.append(result.regret)
        shares.append(result.share("warm", last=500))
    mean = np.mean(np.array(regrets), axis=0)
    uniform = np.arange(1, EPISODES + 1) * (0.7 - np.mean(list(RATES.values())))
    print(f"best policy's share of the last 500 episodes: mean {np.mean(shares):.1%}, worst seed {min(shares):.1%}")
    for t in (500, 1000, 2000):
        print(f"cumulative regret at {t:5d}: {mean[t - 1]:6.1f}   (uniform random: {uniform[t - 1]:.0f})")
    out = ROOT / "docs" / "bandit-regret.svg"
    svg({"Thompson sampling (mean of seeds)": ("#1f77b4", mean), "uniform random": ("#999999", uniform)}, out)
    print(f"plot: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
