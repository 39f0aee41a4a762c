"""The trained policy model: featuriser against a plain-Python oracle, windows, training
determinism, threshold → verdict mapping, `relay policy check --explain`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from relay.message.normalize import normalize
from relay.policy import PolicyConfigError, build_policy, check, load_policy
from relay.policy import model as M
from relay.policy.engine import model_findings
from tests.unit.policy.conftest import POLICY_PATH, plain

ROOT = Path(__file__).resolve().parents[3]

TEXTS = ["", "a", "ab", "Hello, World 2024!", "ご注文ありがとうございます。", "感谢您的订单", "주문 감사합니다",
         "emoji 😀🎉 mix ＦＵＬＬ width", "tabs\tand\nlines\r\n", "x" * 1500, "日本" * 700]


def reference_buckets(folded: str, f: M.Featuriser) -> list[list[int]]:
    """The independent oracle: digits → 0, controls/whitespace → space, then every n-gram hashed alone."""
    mapped = "".join("0" if "0" <= c <= "9" else " " if ord(c) <= 0x20 else c for c in folded)
    return [[M.bucket_of(mapped[i : i + n], f) for i in range(len(mapped) - n + 1)]
            for n in range(f.nmin, f.nmax + 1)]


@pytest.mark.parametrize("f", [M.Featuriser(), M.Featuriser(nmin=2, nmax=5, bits=20, stride=200)])
@pytest.mark.parametrize("text", TEXTS)
def test_vectorised_hashes_equal_the_python_reference(text: str, f: M.Featuriser) -> None:
    folded = normalize(text).text
    cp = M.codepoints(folded)
    assert cp.size == len(folded)
    got = [b.tolist() for b in M.buckets(cp, f)]
    assert got == reference_buckets(folded, f)
    assert all(0 <= x < 1 << f.bits for row in got for x in row)


def test_codepoints_keep_cjk_and_fold_width_case_digits() -> None:
    cp = M.codepoints(normalize("ＡＢ１２ 日本\t한").text)
    assert "".join(map(chr, cp.tolist())) == "ab00 日本 한"


def test_windows_cover_the_text_in_overlapping_pairs_of_blocks() -> None:
    f = M.Featuriser(stride=300)
    assert M.windows(0, f).tolist() == []
    assert M.windows(10, f).tolist() == [[0, 10]]
    assert M.windows(600, f).tolist() == [[0, 600]]
    assert M.windows(601, f).tolist() == [[0, 600], [300, 601]]
    assert M.windows(1000, f).tolist() == [[0, 600], [300, 900], [600, 1000]]
    f4 = M.Featuriser(nmin=1, nmax=4)
    assert M.window_counts(M.block_grams(M.codepoints("abc"), f4)[1]).tolist() == [3 + 2 + 1]
    # a gram counts once per block however often it recurs: a run of one letter is 4 grams
    assert M.window_counts(M.block_grams(M.codepoints("y" * 250), f4)[1]).tolist() == [4]
    assert M.window_counts(np.array([4, 5, 6])).tolist() == [9, 11]


def random_model(f: M.Featuriser, seed: int = 0) -> M.Model:
    rng = np.random.default_rng(seed)
    w = rng.integers(-M.QMAX, M.QMAX + 1, size=(1 << f.bits, 3), dtype=np.int16)
    meta = {"format": M.FORMAT, **f.meta(), "categories": list(M.CATEGORIES),
            "scale": {c: 0.01 for c in M.CATEGORIES}, "bias": {c: -1.0 for c in M.CATEGORIES},
            "platt": {c: [1.0, 0.0] for c in M.CATEGORIES}}
    return M.Model(w, meta)


@pytest.mark.parametrize("text", [*TEXTS, "filler text. " * 4000 + "BIG SALE 50% OFF", "y" * 2000])
def test_window_sums_equal_direct_sums(text: str) -> None:
    f = M.Featuriser(bits=12)
    model = random_model(f)
    cp = M.codepoints(normalize(text).text)
    sums = model.window_sums(cp)[0] if cp.size else np.zeros((0, 3))
    wins = M.windows(cp.size, f)
    assert len(sums) == len(wins)
    rows = M.buckets(cp, f)
    nb = -(-cp.size // f.stride)
    # each block's distinct buckets, summed over the blocks of each window
    per_block = [{int(x) for r in rows for x in r[j * f.stride:(j + 1) * f.stride]} for j in range(nb)]
    for i, got in enumerate(sums.tolist()):
        blocks = range(nb) if nb <= 2 else (i, i + 1)
        want = sum((model.weights[sorted(per_block[j])].astype(np.int64).sum(axis=0) for j in blocks),
                   np.zeros(3, np.int64))
        assert got == want.tolist()


def test_huge_text_scores_every_window() -> None:
    """100 KB of text: one score per category, its window inside the text (the time it takes is
    measured by bench/, not asserted here)."""
    model = random_model(M.Featuriser())
    text = normalize("Your parcel ships Monday from Osaka. " * 2800).text[:100_000]
    s = model.score(text)
    assert set(s.probability) == set(M.CATEGORIES)
    assert all(0 <= a < b <= len(text) for a, b in s.windows.values())
    assert len(model.raw_scores(M.codepoints(text))) == len(M.windows(len(text), model.featuriser))
    assert model.score("").probability == {c: 0.0 for c in M.CATEGORIES}


# --- a tiny trained model --------------------------------------------------------------------

CLEAN = ["Thanks for your order, it ships Monday.", "Your parcel left our warehouse today.",
         "Could you confirm the size you need?", "The refund was issued yesterday.",
         "ご注文ありがとうございます。明日発送します。", "感谢您的订单，明天发货。", "주문 감사합니다. 내일 발송됩니다."]
BAD = {"marketing": ["Huge summer sale: 40% off everything, shop now!", "Grab our mega discount deals this week!"],
       "review": ["Please leave us a glowing five star review!", "Kindly rate us five stars, thank you!"],
       "contact": ["Message me on WhatsApp to skip the fees.", "Add me on the green app, we trade directly."]}


def tiny_corpus(path: Path, n: int = 240) -> Path:
    lines = []
    for i in range(n):
        text = CLEAN[i % len(CLEAN)] + " " + CLEAN[(i * 3) % len(CLEAN)]
        labels = []
        cat = list(BAD)[i % 3]
        if i % 4 == 0:
            text += " " + BAD[cat][i % 2]
            labels.append(cat)
        lines.append(json.dumps({"id": f"t{i}", "lang": "en", "text": text, "labels": labels,
                                 "kind": "test", "direction": "seller"}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("model")
    from relay.policy import train
    assert train.main(["--corpus", str(tiny_corpus(d / "c.jsonl")), "--out", str(d / "m.npz"), "--bits", "14", "--floor", "1"]) == 0
    return d / "m.npz"


def test_training_is_deterministic(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from relay.policy import train
    out = tmp_path / "again.npz"
    train.main(["--corpus", str(tiny_corpus(tmp_path / "c.jsonl")), "--out", str(out), "--bits", "14", "--floor", "1"])
    assert out.read_bytes() == trained.read_bytes()
    meta = M.read_meta(trained)
    assert set(meta["thresholds"]) == set(M.CATEGORIES)
    model = M.load(trained)
    assert model.score(normalize(BAD["review"][0]).text).probability["review"] > 0.5
    assert model.score(normalize(CLEAN[0]).text).probability["review"] < 0.5


def policy_with_model(path: Path, **cats: tuple[float, float, str]) -> dict[str, object]:
    import tomllib
    data = tomllib.loads(POLICY_PATH.read_text())
    data["model"] = {"enabled": True, "path": str(path),
                     **{c: {"high": h, "low": lo, "action": a} for c, (h, lo, a) in cats.items()}}
    return data


@pytest.mark.parametrize(("high", "low", "action", "verdict"), [
    (0.01, 0.0, "reject", "reject"),     # above high → the configured action
    (0.01, 0.0, "redact", "redact"),
    (1.0, 0.0, "reject", "hold"),        # between low and high → hold
    (1.0, 1.0, "reject", None),          # below low → nothing
])
def test_threshold_to_verdict(trained: Path, high: float, low: float, action: str, verdict: str | None) -> None:
    policy = build_policy(policy_with_model(trained, review=(high, low, action), marketing=(1.0, 1.0, "reject"),
                                            contact=(1.0, 1.0, "reject")))
    found = model_findings([("1", normalize("Thanks! " + BAD["review"][1]).text)], policy)
    got = [f for f in found if f.rule == "model.review"]
    if verdict is None:
        assert got == []
    else:
        assert [f.action for f in got] == [verdict] and got[0].category == "review"
        assert got[0].features and "model score" in got[0].detail and got[0].part == "1"


def test_check_reports_model_findings_for_the_whole_message() -> None:
    """A promotion after 45 KB of ordinary replies is judged where it is (the shipped model): the
    filler alone scores nothing, the message is held or refused, and the finding's window is its last."""
    filler = ("Thanks for your order. The parcel left today and should arrive within three working days."
              " Please keep the packaging until you have checked the item.\n") * 300
    promo = ("Our new autumn collection has just arrived in the shop, and every candle in it is twenty"
             " percent off this week only!")
    model = M.load(M.DEFAULT_PATH)
    assert model.score(normalize(filler).text).probability["marketing"] < 0.1
    policy = build_policy(policy_with_model(M.DEFAULT_PATH, marketing=(0.99, 0.5, "reject")))
    found = {f.rule: f for f in check(plain(filler + promo), policy).findings}
    assert found["model.marketing"].action in ("hold", "reject")
    assert found["model.marketing"].end >= len(normalize(filler + promo).text) - 5  # the last window


@pytest.mark.parametrize(("rule_actions", "expected"), [
    ({}, {"review"}),                                      # the rules act on nothing: the model's verdict
    ({"review": "redact"}, set()),                         # the rules act on that category: theirs stands
    ({"review": "flag"}, {"review"}),                      # a rule that only flags does not act
    ({"contact": "reject"}, set()),                        # the rules refuse the message: nothing to add
    ({"contact": "redact"}, {"review"}),                   # another category redacted: the model still judges
])
def test_model_defers_to_rules_that_act(trained: Path, rule_actions: dict[str, str], expected: set[str]) -> None:
    from relay.policy.engine import Finding
    policy = build_policy(policy_with_model(trained, review=(0.01, 0.0, "reject"), marketing=(1.0, 1.0, "reject"),
                                            contact=(1.0, 1.0, "reject")))
    found = [Finding(cat, f"{cat}.test", "1", 0, 1, action, "") for cat, action in rule_actions.items()]
    got = model_findings([("1", normalize("Thanks! " + BAD["review"][1]).text)], policy, found)
    assert {f.category for f in got} == expected


def test_model_section_is_validated(tmp_path: Path) -> None:
    data = policy_with_model(tmp_path / "missing.npz")
    with pytest.raises(PolicyConfigError) as exc:
        build_policy(data)
    assert exc.value.key == "model.path"
    assert load_policy(POLICY_PATH).model_path == M.DEFAULT_PATH  # shipped enabled, with the shipped model
    data = policy_with_model(tmp_path / "x.npz", review=(0.5, 0.9, "reject"))
    (tmp_path / "x.npz").write_bytes(b"")
    with pytest.raises(PolicyConfigError):
        build_policy(data)


def test_low_above_high_is_refused(trained: Path) -> None:
    with pytest.raises(PolicyConfigError) as exc:
        build_policy(policy_with_model(trained, review=(0.5, 0.9, "reject")))
    assert exc.value.key == "model.review.low"
    data = policy_with_model(trained)
    data["model"]["review"] = {"action": "hold"}  # type: ignore[index]
    with pytest.raises(PolicyConfigError):
        build_policy(data)


def test_cli_explain(trained: Path, tmp_path: Path) -> None:
    import tomllib  # noqa: F401
    text = POLICY_PATH.read_text().replace('enabled = true\npath = ""', f'enabled = true\npath = "{trained}"', 1)
    text = re.sub(r'(\[review\]\naction = )"\w+"', r'\1"flag"', text)  # the model's verdict, not the phrase rules'
    pol = tmp_path / "policy.toml"
    pol.write_text(text)
    eml = tmp_path / "m.eml"
    eml.write_bytes(plain("Thanks! " + BAD["review"][0] + " Call 090-1234-5678"))
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'[relay]\nstate_dir = "{tmp_path}"\n')
    base = [sys.executable, "-m", "relay", "--config", str(cfg), "policy", "check", str(eml), "--policy", str(pol)]
    r = subprocess.run([*base, "--explain"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "why: rule contact.phone" in r.stdout and "model.review" in r.stdout and "why: model review score" in r.stdout
    r = subprocess.run([*base, "--explain", "--json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    doc = json.loads(r.stdout)
    by_rule = {f["rule"]: f for f in doc["findings"]}
    assert by_rule["model.review"]["explain"]["by"] == "model" and by_rule["model.review"]["explain"]["features"]
    assert by_rule["contact.phone"]["explain"] == {"by": "rule", "rule": "contact.phone",
                                                   "detail": by_rule["contact.phone"]["detail"]}
    plain_run = subprocess.run(base, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert plain_run.returncode == 0 and "why:" not in plain_run.stdout
