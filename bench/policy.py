"""Policy benchmark: time per message for typical and heavy messages, peak memory, and the
detection figures over the shared adversarial strings and the ordinary-message set.

    python bench/policy.py
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.policy import apply, check, load_policy  # noqa: E402
from tests.unit.policy.cases import ADVERSARIAL, ORDINARY  # noqa: E402
from tests.unit.policy.conftest import plain  # noqa: E402


def _timeit(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def plain_5k() -> bytes:
    para = ("Hello, thank you for your order. The item was packed this morning and will be handed to the "
            "carrier today. Delivery usually takes three to five working days. If anything is wrong, just "
            "reply to this message and I will sort it out. ")
    return plain((para * 30)[:5000])


def html_50k() -> bytes:
    rows = "".join(f"<tr><td style='padding:4px'>Item {i}</td><td>Size M, colour navy</td><td>&yen;1,200</td></tr>"
                   for i in range(500))
    body = f"<html><body><p>Thank you for your order!</p><table>{rows}</table></body></html>"[:50_000]
    msg = EmailMessage()
    msg["Subject"] = "Your order"
    msg.set_content(body, subtype="html")
    return msg.as_bytes()


def heavy() -> bytes:
    from PIL import Image
    from pypdf import PdfWriter

    w = PdfWriter()
    for _ in range(40):
        w.add_blank_page(595, 842)
    w.add_metadata({"/Author": "Taro Yamada"})
    buf = io.BytesIO()
    w.write(buf)
    pdf = buf.getvalue()
    pdf += b"\n%" + random.randbytes(10_000_000 - len(pdf) - 200).hex().encode()[: 10_000_000 - len(pdf) - 200] + b"\n"
    img = Image.effect_noise((4000, 3000), 40).convert("RGB")
    jbuf = io.BytesIO()
    img.save(jbuf, "JPEG", quality=85)
    msg = EmailMessage()
    msg["Subject"] = "Documents"
    msg.set_content("Please find the documents attached.")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="catalog.pdf")
    msg.add_attachment(jbuf.getvalue(), maintype="image", subtype="jpeg", filename="photo.jpg")
    return msg.as_bytes()


def main() -> None:
    policy = load_policy(ROOT / "config" / "policy.toml")
    check(plain("warm up example.com 090-1234-5678"), policy)
    m5, m50, mh = plain_5k(), html_50k(), heavy()
    print(f"5 KB plain ({len(m5)} B):   check {_timeit(lambda: check(m5, policy), 200) * 1000:7.2f} ms")
    print(f"50 KB HTML ({len(m50)} B): check {_timeit(lambda: check(m50, policy), 30) * 1000:7.2f} ms")
    from relay.message.normalize import normalize
    from relay.policy import model as trained

    model = trained.load(trained.DEFAULT_PATH)
    for size in (5_000, 100_000, 2_000_000):  # the trained model alone, on that much normalized text
        text = normalize(("Your parcel ships Monday from Osaka. 発送しました。明天发货。 " * (size // 40 + 1))[:size]).text
        repeat = 200 if size <= 5_000 else 20 if size <= 100_000 else 3
        print(f"model score, {size // 1000} KB of text: {_timeit(lambda t=text: model.score(t), repeat) * 1000:7.2f} ms")
    r = check(mh, policy)
    t_check = _timeit(lambda: check(mh, policy), 3)
    t_apply = _timeit(lambda: apply(mh, r, policy), 3)
    tracemalloc.start()
    apply(mh, check(mh, policy), policy)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"10 MB PDF + 4000x3000 JPEG ({len(mh) / 1e6:.1f} MB): check {t_check * 1000:7.1f} ms, "
          f"apply {t_apply * 1000:7.1f} ms, peak traced memory (check+apply) {peak / 1e6:.1f} MB")
    print(f"   findings: {[(f.rule, f.part) for f in r.findings]}")

    caught = 0
    missed = []
    for cat, text in ADVERSARIAL:
        if cat in {f.category for f in check(plain(f"Hello,\n\n{text}\n"), policy).findings}:
            caught += 1
        else:
            missed.append(text)
    flagged = [t for t in ORDINARY
               if check(plain(f"Hello,\n\n{t}\n"), policy, own_addresses=("buyer-x7k2@relay.example",)).findings]
    print(f"adversarial strings caught: {caught}/{len(ADVERSARIAL)}  missed: {missed}")
    print(f"ordinary messages wrongly flagged: {len(flagged)}/{len(ORDINARY)}  {flagged}")


if __name__ == "__main__":
    main()
