"""A small preference set that rewardforge writes itself, for the default run and the demos.

Each prompt asks how to do an everyday task. The chosen answer is polite, on topic and gives
concrete steps; the rejected answer is rude, evasive, or a good answer to a different
question. Evaluation pairs use tasks never seen in training, so held-out accuracy measures
generalisation, not memory. Generated from templates with a fixed seed: no copied text.
"""

from __future__ import annotations

import random

from rewardforge.data.types import PreferencePair

# (task, first step, second step)
TASKS = [
    ("boil an egg", "put the egg in a pot of cold water", "bring it to a boil and simmer for nine minutes"),
    (
        "change a bike tyre",
        "release the brake and remove the wheel",
        "lever the old tyre off and fit the new one",
    ),
    ("water a cactus", "check that the soil is completely dry", "soak the soil and let it drain fully"),
    (
        "write a cover letter",
        "read the job advert closely",
        "match each requirement with one of your achievements",
    ),
    (
        "clean a cast iron pan",
        "rinse it with hot water while it is warm",
        "dry it on the stove and rub in a little oil",
    ),
    (
        "learn to juggle",
        "practise throwing one ball from hand to hand",
        "add the second ball once the arc is steady",
    ),
    ("brew green tea", "heat the water to about eighty degrees", "steep the leaves for two minutes"),
    ("back up a laptop", "plug in an external drive", "turn on the built-in backup tool and pick that drive"),
    ("plant tomatoes", "choose a sunny spot with rich soil", "set the seedlings deep and water them well"),
    (
        "fix a dripping tap",
        "turn off the water supply under the sink",
        "replace the worn washer inside the valve",
    ),
    ("start running", "begin with short runs mixed with walking", "add a few minutes each week"),
    ("make a budget", "list your monthly income", "write down every fixed and variable expense"),
    ("iron a shirt", "start with the collar and cuffs", "then press the sleeves, back and front panels"),
    (
        "descale a kettle",
        "fill it with equal parts water and vinegar",
        "boil it, leave it for an hour and rinse",
    ),
    (
        "tie a bowline knot",
        "make a small loop in the standing part",
        "pass the end up through it, around and back down",
    ),
    (
        "prepare for an interview",
        "research the company and the role",
        "rehearse answers to common questions aloud",
    ),
    (
        "sharpen a kitchen knife",
        "soak the whetstone for ten minutes",
        "draw the blade across it at a steady angle",
    ),
    ("paint a room", "cover the floor and tape the edges", "apply two thin coats with a roller"),
    ("bake bread", "mix flour, water, yeast and salt into a dough", "let it rise, shape it and bake it hot"),
    ("care for a houseplant", "give it bright indirect light", "water it when the top of the soil feels dry"),
    (
        "reset a router",
        "hold the reset button for ten seconds",
        "wait for the lights to settle and log in again",
    ),
    ("study for an exam", "split the material into daily portions", "test yourself instead of rereading"),
    ("wash a wool jumper", "use cool water and a wool detergent", "press out the water and dry it flat"),
    (
        "make a paper plane",
        "fold a sheet in half lengthwise",
        "fold the top corners to the centre line twice",
    ),
    (
        "cook rice",
        "rinse the rice until the water runs clear",
        "simmer it covered with one and a half cups of water per cup",
    ),
    (
        "set up a fish tank",
        "rinse the gravel and fill the tank",
        "run the filter for a few weeks before adding fish",
    ),
    ("improve your sleep", "go to bed at the same time every night", "keep screens out of the bedroom"),
    ("unclog a drain", "pour boiling water down it", "use a plunger or a drain snake if it stays blocked"),
    ("pack for a trip", "write a list of what you need", "roll your clothes to save space"),
    ("learn a new language", "practise a little every day", "speak with native speakers as early as you can"),
    (
        "make a smoothie",
        "add fruit, yoghurt and a splash of milk to a blender",
        "blend until smooth and serve cold",
    ),
    ("hang a picture", "mark the height at eye level", "drive a picture hook into the wall at the mark"),
    ("clean windows", "wash them with warm soapy water", "wipe them dry with a squeegee from top to bottom"),
    (
        "start a compost heap",
        "pick a shady corner of the garden",
        "layer green scraps with dry leaves and turn it monthly",
    ),
    (
        "save for a holiday",
        "decide on a target amount and date",
        "move a fixed sum into savings every payday",
    ),
    (
        "write a short story",
        "pick one character with a clear goal",
        "put an obstacle in their way and resolve it",
    ),
    ("repair a torn jacket", "turn it inside out and pin the tear", "sew small stitches across the gap"),
    ("make pancakes", "whisk flour, eggs and milk into a batter", "cook ladlefuls in a hot buttered pan"),
    ("teach a dog to sit", "hold a treat above its nose", "say sit and reward it the moment it sits"),
    ("organise a closet", "take everything out and sort it", "donate what you have not worn in a year"),
]

QUESTIONS = [
    "How do I {t}?",
    "Can you explain how to {t}?",
    "What is the best way to {t}?",
    "I want to {t}. Where should I start?",
]
GOOD = [
    "Happy to help! To {t}, first {a}, and then {b}.",
    "Sure. The simplest way to {t} is to {a}. After that, {b}.",
    "Good question. Start by making sure you {a}; next, {b}. Let me know if you get stuck.",
    "Here is a reliable method: {a}, then {b}. That is all it takes to {t}.",
]
RUDE = [
    "Why would I tell you? Figure it out yourself.",
    "That is a stupid question. Look it up.",
    "I don't care about that. Ask someone else.",
    "Ugh, not this again. No.",
    "Honestly, you should already know this.",
    "I don't know and I'm not going to find out.",
]


def _pair(rng: random.Random, task: tuple[str, str, str], other: tuple[str, str, str], i: int, split: str):
    t, a, b = task
    prompt = rng.choice(QUESTIONS).format(t=t)
    chosen = rng.choice(GOOD).format(t=t, a=a, b=b)
    kind = rng.choice(["rude", "off_topic"])
    if kind == "rude":
        rejected = rng.choice(RUDE)
    else:
        ot, oa, ob = other
        rejected = rng.choice(GOOD).format(t=ot, a=oa, b=ob)
    return PreferencePair(
        prompt=[{"role": "user", "content": prompt}],
        chosen=[{"role": "assistant", "content": chosen}],
        rejected=[{"role": "assistant", "content": rejected}],
        id=f"builtin-{split}-{i}",
        category=kind,
        source=f"builtin:{split}:pair {i + 1}",  # one record per pair, as a file's line would be
    )


def builtin_pairs(split: str = "train", n: int | None = None, seed: int = 0) -> list[PreferencePair]:
    """`train` uses the first 30 tasks, `test` the last 10 (unseen in training)."""
    rng = random.Random(f"{split}-{seed}")
    tasks = TASKS[:30] if split == "train" else TASKS[30:]
    n = n if n is not None else (480 if split == "train" else 120)
    pairs = []
    for i in range(n):
        task = rng.choice(tasks)
        other = rng.choice([x for x in TASKS if x is not task])
        pairs.append(_pair(rng, task, other, i, split))
    return pairs
