"""Build data/policy/offtopic.jsonl: legitimate mail that is not a buyer-seller conversation.

Real mail reaching the relay also carries text no marketplace message resembles: headers quoted
in a forward, dates with time zones, log lines, code, identifiers with underscores, hex and base64
runs, version strings, tables of numbers, mailing-list discussion, test messages, everyday notes
between people. Trained only on marketplace messages, the model read such character shapes
(":", "_", "+0000", "x", "q") as a contact offer's handle or number. These messages, all
legitimate, teach it otherwise. Every fragment below was written for this file; one fixed seed,
lists only, so

    python3 data/policy/offtopic.py            # rewrites data/policy/offtopic.jsonl byte for byte
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261208
COUNT = 2000

WORDS = ("alpha beta gamma delta parser buffer header boundary charset encoding message part body "
         "stream token field value index offset length config build test case fixture mailbox folder "
         "server client socket thread queue worker cache store record entry column table patch commit "
         "branch release version module package import export format input output error warning").split()
NAMES = ["Bob", "Alice", "Jamie", "Dana", "Kenji", "Mei", "Jiwoo", "Lena", "Omar", "Priya", "Sven", "Zoe"]
TZ = ["+0000", "-0700", "+0900", "-0500", "+0100", "+0530", "(UTC)", "GMT", "-0800 (PST)", "+0200 (CEST)"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PROSE = [
    "I think the patch looks fine, but the build fails on the old compiler.",
    "Can you rerun the tests with the verbose flag and send me the output?",
    "This is a test message with a very long boundary string.",
    "The attached file is the second part of the report.",
    "Meeting moved to Thursday at 3, same room as last week.",
    "Thanks, that fixed it. I'll merge it tonight.",
    "Here is the log from last night's run; the error starts around line 40.",
    "Forwarding this in case it is useful for the migration.",
    "Sorry for the late reply, I was travelling.",
    "The parser chokes on this one: the header is folded twice.",
    "Does anyone know why the nightly job is failing since Tuesday?",
    "Please find the minutes of the committee meeting below.",
    "I'm out of the office until Monday with limited access to mail.",
    "Lunch tomorrow? The place near the station is open again.",
    "Happy birthday! Hope you have a wonderful day.",
    "The quarterly numbers are in the spreadsheet on the shared drive.",
    "Reminder: the server will be down for maintenance on Saturday night.",
    "Could you review the draft before I send it to the board?",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.",
    "テストメールです。文字化けしていないか確認してください。",
    "添付の資料をご確認ください。会議は木曜日の午後三時からです。",
    "昨日のビルドが失敗しています。ログを確認してもらえますか。",
    "这是一封测试邮件，请检查附件是否能正常打开。",
    "会议改到周四下午三点，地点不变。",
    "服务器将于周六晚上维护，届时无法访问。",
    "테스트 메일입니다. 첨부 파일이 잘 열리는지 확인해 주세요.",
    "회의는 목요일 오후 세 시로 옮겨졌습니다.",
    "어제 빌드가 실패했어요. 로그 좀 확인해 주실래요?",
    "Привет! Посылаю отчёт за май, проверь, пожалуйста.",
    "Bonjour, voici le compte rendu de la réunion d'hier.",
    "Hallo, anbei die Rechnung für den letzten Monat.",
]


def word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def ident(rng: random.Random) -> str:
    parts = [word(rng) for _ in range(rng.randint(2, 4))]
    return rng.choice(["_", "-", ".", ""]).join(parts) if rng.random() < 0.8 else "".join(p.title() for p in parts)


def hexrun(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def date(rng: random.Random) -> str:
    return (f"{rng.choice(DAYS)}, {rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1995, 2026)} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} {rng.choice(TZ)}")


def line(rng: random.Random) -> str:
    kind = rng.randrange(16)
    if kind == 0:
        return f"Date: {date(rng)}"
    if kind == 1:
        return f"{rng.choice(['X-Mailer', 'X-Spam-Status', 'X-Original-To', 'Thread-Index', 'X-MS-Has-Attach'])}: {ident(rng)} {hexrun(rng, 8)}"
    if kind == 2:
        return f"{rng.randint(2001, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z {rng.choice(['INFO', 'WARN', 'ERROR', 'DEBUG'])} {ident(rng)}: {word(rng)} {word(rng)} ({rng.randint(0, 9999)} ms)"
    if kind == 3:
        return f"    {ident(rng)} = {rng.choice([str(rng.randint(0, 10**6)), repr(word(rng)), 'None', 'true', '[]'])}"
    if kind == 4:
        return f"def {ident(rng).replace('-', '_').replace('.', '_')}(self, {word(rng)}, {word(rng)}=None):"
    if kind == 5:
        return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(rng.choice([40, 60, 76])))
    if kind == 6:
        return f"{hexrun(rng, 8)}-{hexrun(rng, 4)}-{hexrun(rng, 4)}-{hexrun(rng, 4)}-{hexrun(rng, 12)}"
    if kind == 7:
        return f"/{'/'.join(ident(rng) for _ in range(rng.randint(2, 4)))}.{rng.choice(['py', 'c', 'eml', 'txt', 'log', 'msg'])}:{rng.randint(1, 900)}"
    if kind == 8:
        return " | ".join(str(rng.randint(0, 99999)) for _ in range(rng.randint(3, 6)))
    if kind == 9:
        return f"@@ -{rng.randint(1, 400)},{rng.randint(1, 9)} +{rng.randint(1, 400)},{rng.randint(1, 9)} @@ {ident(rng)}"
    if kind == 10:
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} ({hexrun(rng, 7)}) {word(rng)} {word(rng)}"
    if kind == 11:
        return f"On {date(rng)}, {rng.choice(NAMES)} wrote:"
    if kind == 12:
        return f"> {rng.choice(PROSE)}"
    if kind == 13:
        return ", ".join(f"{word(rng)}={rng.randint(0, 999)}" for _ in range(rng.randint(2, 5)))
    if kind == 14:
        return f"--{'=' * rng.randint(0, 3)}_{ident(rng)}_{hexrun(rng, rng.choice([8, 16, 32]))}"
    return rng.choice(PROSE)


def message(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.5:
        lines.append(f"Hi {rng.choice(NAMES)},")
    for _ in range(rng.choice([1, 2, 3, 4, 6, 8, 12])):
        lines.append(line(rng) if rng.random() < 0.7 else rng.choice(PROSE))
    if rng.random() < 0.5:
        lines.append(rng.choice(NAMES))
    return "\n".join(lines)


def build() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    out, seen = [], set()
    while len(out) < COUNT:
        text = message(rng)
        if text in seen:
            continue
        seen.add(text)
        lang = "en"
        out.append({"id": f"{lang}-{800001 + len(out)}", "lang": lang, "text": text, "labels": [],
                    "kind": "legit.offtopic", "direction": "buyer" if rng.random() < 0.3 else "seller"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "offtopic.jsonl")
    args = ap.parse_args()
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build()), encoding="utf-8")


if __name__ == "__main__":
    main()
