"""Build data/policy/corpus.jsonl: the labelled messaging-policy corpus (issue 22).

Every message is composed from the hand-written phrase banks in bank_en.py, bank_ja.py,
bank_zh.py and bank_ko.py (written by the relay team; no third-party text). One fixed seed
per language, lists only (no set or dict-order dependence), so

    python3 data/policy/generate.py                 # rewrites data/policy/corpus.jsonl
    python3 data/policy/generate.py --out /tmp/x    # the same bytes elsewhere
    python3 data/policy/generate.py --stats         # counts and phrase-bank sizes

reproduces the checked-in file byte for byte. Legitimate and policy-violating messages are
built from the same greetings, lead-ins, closings, signatures, quotes and noise, so only the
core sentences tell them apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bank_en  # noqa: E402
import bank_ja  # noqa: E402
import bank_ko  # noqa: E402
import bank_zh  # noqa: E402

BANKS = [bank_en, bank_ja, bank_zh, bank_ko]
SEED = 20261207
PER_LANG = 6400
LEGIT_SHARE = 0.55
CATEGORIES = ["marketing", "review", "contact"]

EMOJI = ["😊", "🙏", "✨", "📦", "🎁", "👍", "❤️", "🌸", "🙂", "😀", "🚚", "⭐", "🎉", "💐", "☺️", "(^^)", "(*^^*)", "^_^", "!!", "~"]
LATIN = "abcdefghijklmnopqrstuvwxyz"
# Sentences in a message body (before any lead-in), drawn the same way for legitimate and violating
# messages; four in ten are single sentences. ONE_LINER: share of messages with no greeting, lead-in,
# closing, signature or quote, again for every label.
BODY_SENTENCES = [1, 1, 1, 1, 2, 2, 2, 3, 3, 4]
ONE_LINER = 0.3
SECOND_LABEL = 0.12


# ---------------------------------------------------------------- slot values shared by all languages

def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def order_no(rng: random.Random) -> str:
    shape = rng.randrange(7)
    if shape == 0:
        return f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}"
    if shape == 1:
        return f"#{rng.randrange(1000, 99999)}"
    if shape == 2:
        return f"ORD-{rng.choice(['2025', '2026'])}-{_digits(rng, 5)}"
    if shape == 3:
        return f"{rng.choice(['2025', '2026'])}{_digits(rng, 4)}-{_digits(rng, 6)}"
    if shape == 4:
        return f"MP{_digits(rng, 9)}"
    if shape == 5:
        return f"#{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}"
    return _digits(rng, 12)


def tracking_no(rng: random.Random) -> str:
    shape = rng.randrange(8)
    up = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    if shape == 0:
        return "1Z" + "".join(rng.choice(up) for _ in range(16))
    if shape == 1:
        return f"{rng.choice(['EJ', 'LX', 'RR', 'CP', 'EE'])}{_digits(rng, 9)}{rng.choice(['JP', 'CN', 'KR', 'US', 'GB'])}"
    if shape == 2:
        return f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if shape == 3:
        return f"SF{_digits(rng, 13)}"
    if shape == 4:
        return f"YT{_digits(rng, 16)}"
    if shape == 5:
        return f"9400 {_digits(rng, 4)} {_digits(rng, 4)} {_digits(rng, 4)} {_digits(rng, 4)} {_digits(rng, 2)}"
    if shape == 6:
        return _digits(rng, 12)
    return f"{_digits(rng, 10)}"


def phone_no(rng: random.Random) -> str:
    shape = rng.randrange(12)
    if shape == 0:
        return f"090-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if shape == 1:
        return f"+81 80 {_digits(rng, 4)} {_digits(rng, 4)}"
    if shape == 2:
        return f"138 {_digits(rng, 4)} {_digits(rng, 4)}"
    if shape == 3:
        return f"010-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if shape == 4:
        return f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}"
    if shape == 5:
        return f"+1 {_digits(rng, 3)}.{_digits(rng, 3)}.{_digits(rng, 4)}"
    if shape == 6:
        return f"+82 10 {_digits(rng, 4)} {_digits(rng, 4)}"
    if shape == 7:
        return f"+86-1{_digits(rng, 2)}-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if shape == 8:
        d = _digits(rng, 11)
        return " ".join(d)
    if shape == 9:
        return "o9o" + _digits(rng, 8)
    if shape == 10:
        return to_fullwidth(f"080-{_digits(rng, 4)}-{_digits(rng, 4)}")
    return f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}"


def handle(rng: random.Random) -> str:
    a = rng.choice(["kate", "mina", "yuki", "leo", "sora", "hana", "jun", "lily", "momo", "wei", "jin", "ari", "noa", "tom", "ren"])
    b = rng.choice(["crafts", "shop", "store", "studio", "made", "handmade", "goods", "works", "atelier", "select", "home", "deals"])
    sep = rng.choice(["", "_", ".", "-", ""])
    tail = rng.choice(["", str(rng.randrange(1, 99)), "_jp", "_official", "2026", ""])
    h = f"{a}{sep}{b}{tail}"
    return rng.choice(["", "", "@"]) + h


def mail_user(rng: random.Random) -> str:
    return handle(rng).lstrip("@").replace("-", ".")


def pct(rng: random.Random) -> str:
    return str(rng.choice([5, 10, 10, 15, 20, 20, 25, 30, 40, 50]))


def code(rng: random.Random) -> str:
    return rng.choice(["THANKS", "AUTUMN", "WELCOME", "VIP", "SPRING", "BACK", "HELLO", "FRIEND", "SAVE", "XMAS"]) + str(rng.choice([5, 10, 15, 20, 25, 2026]))


def to_fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in s)


COMMON_SLOTS = {
    "order": order_no, "tracking": tracking_no, "phone": phone_no, "handle": handle,
    "user": mail_user, "pct": pct, "code": code,
}


def fill(text: str, bank, rng: random.Random) -> str:
    out = []
    rest = text
    while "{" in rest:
        head, _, tail = rest.partition("{")
        key, _, rest = tail.partition("}")
        out.append(head)
        if key in COMMON_SLOTS:
            out.append(COMMON_SLOTS[key](rng))
        elif key == "date":
            out.append(bank.date(rng))
        elif key == "price":
            out.append(bank.price(rng))
        elif key == "spoken":
            out.append(bank.spoken(rng))
        elif key == "n":
            out.append(str(rng.randrange(2, 8)))
        else:
            out.append(rng.choice(bank.SLOTS[key]))
    out.append(rest)
    return "".join(out)


# ---------------------------------------------------------------- phrase selection

def polite_ok(entry: str, level: str) -> bool:
    if entry.startswith("c:"):
        return level == "casual"
    if entry.startswith("f:"):
        return level == "formal"
    return True


def strip_tag(entry: str) -> str:
    return entry[2:] if entry[:2] in ("c:", "f:") else entry


def pick(rng: random.Random, entries: list[str], level: str) -> str:
    ok = [e for e in entries if polite_ok(e, level)]
    return strip_tag(rng.choice(ok or entries))


def grammar_count(g) -> int:
    n = 1
    for part in g[2]:
        n *= len(part)
    return n


def from_grammar(rng: random.Random, g) -> str:
    _kind, joiner, parts = g
    return joiner.join(p for p in (rng.choice(part) for part in parts) if p)


def violating_pool(bank, category: str, direction: str):
    """(kind, entries) pools and grammars for one category."""
    table = {"marketing": bank.MARKETING, "review": bank.REVIEW, "contact": bank.CONTACT}[category]
    pools = [(f"{category}.{sub}", entries) for sub, entries in table.items()]
    if direction == "buyer" and category == "contact":
        pools = [("contact.buyer", bank.BUYER_CONTACT)]
    grammars = [g for g in bank.GRAMMAR if g[0].startswith(category + ".")] if direction == "seller" else []
    return pools, grammars


def core_sentence(rng, bank, category, direction, level):
    pools, grammars = violating_pool(bank, category, direction)
    if grammars and rng.random() < 0.3:
        g = rng.choice(grammars)
        return g[0], from_grammar(rng, g)
    kind, entries = rng.choice(pools)
    return kind, pick(rng, entries, level)


# ---------------------------------------------------------------- noise

def typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha() and w.isascii()]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    op = rng.randrange(3)
    if op == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif op == 1:
        w = w[:j] + w[j + 1:]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def space_out(rng: random.Random, text: str, words: list[str]) -> str:
    present = [w for w in words if w in text]
    if not present:
        return text
    w = rng.choice(present)
    return text.replace(w, rng.choice([" ", ".", " ", "-", "・"]).join(w) if len(w) > 1 else w, 1)


def fullwidth_span(rng: random.Random, text: str) -> str:
    ascii_runs = [i for i, c in enumerate(text) if c.isascii() and c.isalnum()]
    if not ascii_runs:
        return text
    start = rng.choice(ascii_runs)
    end = min(len(text), start + rng.randrange(4, 24))
    return text[:start] + to_fullwidth(text[start:end]) + text[end:]


def noisy(rng: random.Random, bank, text: str, level: str) -> str:
    if bank.LANG == "en" or bank.LANG == "ko":
        if rng.random() < (0.25 if level == "casual" else 0.08):
            text = typo(rng, text)
    if rng.random() < 0.12:
        text = space_out(rng, text, bank.SPACE_WORDS)
    if rng.random() < 0.06:
        text = fullwidth_span(rng, text)
    if bank.LANG != "en" and rng.random() < 0.3:
        for native, english in bank.MIX:
            if native in text and rng.random() < 0.5:
                text = text.replace(native, english, 1)
    if bank.LANG == "zh" and rng.random() < 0.2:
        text = bank.traditional(text)
    if rng.random() < (0.3 if level == "casual" else 0.08):
        text = text.rstrip() + rng.choice([" ", ""]) + rng.choice(EMOJI)
    if bank.LANG == "en" and level == "casual" and rng.random() < 0.15:
        text = text.lower()
    return text


# ---------------------------------------------------------------- one message

def compose(rng: random.Random, bank, labels: list[str], direction: str) -> tuple[str, str]:
    level = "casual" if rng.random() < 0.35 else "formal"
    sep = bank.SEP
    legit_table = bank.LEGIT if direction == "seller" else bank.BUYER_LEGIT
    kinds = list(legit_table)

    # The body's length is drawn the same way for every label: N sentences, of which a violating
    # message's core sentences are one or two; the rest are legitimate sentences of one kind, with
    # (for N >= 2) one of them from another kind a quarter of the time. So sentence count, and with it
    # length and whitespace, tells nothing about the label.
    n = rng.choice(BODY_SENTENCES)
    core: list[str] = []
    kind = ""
    if labels:
        for cat in labels:
            k, s = core_sentence(rng, bank, cat, direction, level)
            kind = kind or k
            core.append(s)
        if len(core) < n and rng.random() < 0.2:
            _k2, s2 = core_sentence(rng, bank, labels[0], direction, level)
            if s2 not in core:
                core.append(s2)
        n = max(n, len(core))
    elif rng.random() < SECOND_LABEL:
        # as many legitimate bodies get the two-sentence minimum as two-label messages do
        n = max(n, 2)
    ck = rng.choice(kinds)
    if not labels:
        kind = f"legit.{ck}"
    context: list[str] = []
    for _ in range(n - len(core)):
        s = pick(rng, legit_table[ck], level)
        if s not in context:
            context.append(s)
    if len(context) >= 1 and n >= 2 and rng.random() < 0.25:
        other = rng.choice(kinds)
        context[-1] = pick(rng, legit_table[other], level)
    if core:
        pos = rng.randrange(3)
        body = context + core if pos == 0 else core + context if pos == 1 else context[:1] + core + context[1:]
    else:
        body = context

    body = [fill(s, bank, rng) for s in body]
    one_liner = rng.random() < ONE_LINER
    lines: list[str] = []
    if not one_liner:
        if rng.random() < 0.85:
            lines.append(fill(pick(rng, bank.GREET, level), bank, rng))
        if direction == "seller" and rng.random() < 0.45:
            body.insert(0, fill(pick(rng, bank.LEAD, level), bank, rng))
        if direction == "buyer" and rng.random() < 0.35:
            body.insert(0, fill(pick(rng, bank.BUYER_LEAD, level), bank, rng))
    # paragraphs: one for short bodies, several for long ones
    if len(body) >= 4 and rng.random() < 0.7:
        cut = rng.randrange(1, len(body))
        paras = [sep.join(body[:cut]), sep.join(body[cut:])]
    elif len(body) >= 2 and rng.random() < 0.3:
        paras = [sep.join(body[:1]), sep.join(body[1:])]
    else:
        paras = [sep.join(body)]
    lines.append("\n\n".join(paras))
    if not one_liner:
        if rng.random() < 0.8:
            lines.append(fill(pick(rng, bank.CLOSE, level), bank, rng))
        sigs = bank.SIGN if direction == "seller" else bank.BUYER_SIGN
        if rng.random() < 0.6:
            lines.append(fill(rng.choice(sigs), bank, rng))
    joiner = rng.choice(["\n", "\n\n", "\n"]) if not one_liner else "\n"
    text = joiner.join(x for x in lines if x)
    if not one_liner and rng.random() < 0.12:
        other_table = bank.BUYER_LEGIT if direction == "seller" else bank.LEGIT
        qk = rng.choice(list(other_table))
        quoted = fill(pick(rng, other_table[qk], "formal"), bank, rng)
        head = fill(rng.choice(bank.QUOTE_HEAD), bank, rng)
        text += "\n\n" + head + "\n" + "\n".join("> " + q for q in quoted.split("\n"))
    text = noisy(rng, bank, text, level)
    return text, kind


def generate_lang(bank) -> list[dict]:
    rng = random.Random(f"{SEED}-{bank.LANG}")
    n_legit = round(PER_LANG * LEGIT_SHARE)
    plan: list[list[str]] = [[] for _ in range(n_legit)]
    n_bad = PER_LANG - n_legit
    for i in range(n_bad):
        first = CATEGORIES[i % 3]
        labels = [first]
        if rng.random() < SECOND_LABEL:
            second = rng.choice([c for c in CATEGORIES if c != first])
            labels.append(second)
        plan.append(labels)
    rng.shuffle(plan)
    out: list[dict] = []
    seen: set[str] = set()
    for labels in plan:
        for _attempt in range(50):
            # Buyers write legitimate messages and contact offers. Half the contact offers come from
            # buyers, so that about as large a share of violating as of legitimate messages has the
            # buyer's (shorter) shape.
            if "contact" in labels and len(labels) == 1:
                direction = "buyer" if rng.random() < 0.5 else "seller"
            elif labels:
                direction = "seller"
            else:
                direction = "buyer" if rng.random() < 0.25 else "seller"
            text, kind = compose(rng, bank, labels, direction)
            if text not in seen:
                break
        seen.add(text)
        out.append({
            "id": f"{bank.LANG}-{len(out) + 1:06d}",
            "lang": bank.LANG,
            "text": text,
            "labels": sorted(labels, key=CATEGORIES.index),
            "kind": kind,
            "direction": direction,
        })
    return out


def generate() -> list[dict]:
    rows: list[dict] = []
    for bank in BANKS:
        rows.extend(generate_lang(bank))
    return rows


def bank_sizes(bank) -> dict[str, int]:
    sizes = {}
    for cat, table in (("marketing", bank.MARKETING), ("review", bank.REVIEW), ("contact", bank.CONTACT)):
        written = sum(len(v) for v in table.values()) + (len(bank.BUYER_CONTACT) if cat == "contact" else 0)
        combos = sum(grammar_count(g) for g in bank.GRAMMAR if g[0].startswith(cat + "."))
        sizes[f"{cat}.written"] = written
        sizes[f"{cat}.grammar"] = combos
    sizes["legit.seller"] = sum(len(v) for v in bank.LEGIT.values())
    sizes["legit.buyer"] = sum(len(v) for v in bank.BUYER_LEGIT.values())
    sizes["shared"] = len(bank.GREET) + len(bank.LEAD) + len(bank.BUYER_LEAD) + len(bank.CLOSE) + len(bank.SIGN) + len(bank.BUYER_SIGN)
    return sizes


def write(rows: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def stats(rows: list[dict]) -> None:
    for lang, group in itertools.groupby(rows, key=lambda r: r["lang"]):
        g = list(group)
        legit = sum(1 for r in g if not r["labels"])
        per = {c: sum(1 for r in g if c in r["labels"]) for c in CATEGORIES}
        print(lang, len(g), "legit", legit, per)
    for bank in BANKS:
        print(bank.LANG, bank_sizes(bank))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "corpus.jsonl")
    ap.add_argument("--stats", action="store_true")
    args = ap.parse_args(argv)
    rows = generate()
    if args.stats:
        stats(rows)
        return 0
    write(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
