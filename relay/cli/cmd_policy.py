"""relay policy check FILE.eml — every finding for a message, without sending it;
relay message release|drop ID — an operator's decision on a held message."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from relay.cli.common import CliError, add_json, emit, group, quoted, settings, store, write


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "policy", "the messaging policy")
    ck = psub.add_parser("check", help="print every policy finding for a message file (nothing is sent)")
    ck.add_argument("file", type=Path)
    ck.add_argument("--policy", type=Path, help="policy file (default: policy.path from the config)")
    ck.add_argument("--explain", action="store_true",
                    help="say what triggered each finding: its rule, or the model's score and top n-grams")
    add_json(ck)
    ck.set_defaults(handler=policy_check)
    msub = group(sub, "message", "relayed messages")
    rel = msub.add_parser("release", help="deliver a held message")
    rel.add_argument("message", type=int)
    add_json(rel)
    rel.set_defaults(handler=message_release)
    drop = msub.add_parser("drop", help="refuse a held message; the sender gets a notice")
    drop.add_argument("message", type=int)
    add_json(drop)
    drop.set_defaults(handler=message_drop)


def policy_check(args: argparse.Namespace) -> int:
    from relay.policy import PolicyConfigError, check, explain, load_policy

    path = args.policy or settings(args).policy.path
    try:
        policy = load_policy(path)
    except PolicyConfigError as exc:
        raise CliError(f"{path}: {exc}", status=78) from None
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    report = check(raw, policy)
    findings: list[dict[str, Any]] = [
        {"category": f.category, "rule": f.rule, "part": f.part, "start": f.start, "end": f.end,
         "action": f.action, "detail": f.detail, "text": explain(raw, f)} for f in report.findings]
    attachments: list[dict[str, Any]] = [{"part": a.label, "filename": a.filename, "safe_name": a.safe_name, "kind": a.kind,
                    "size": a.size, "action": a.action, "reasons": a.reasons} for a in report.attachments]
    if args.explain:
        for f, found in zip(findings, report.findings, strict=True):
            f["explain"] = _explanation(found)
    lines = [f"verdict: {report.action}" + (f" ({report.reject_category})" if report.reject_category else "")]
    for f in findings:
        lines.append(f"  {f['action']:7} {f['rule']:28} {f['part']:24} [{f['start']}:{f['end']}] {quoted(f['text'])}")
        if args.explain:
            why = f["explain"]
            if why["by"] == "model":
                grams = ", ".join(f"{quoted(g['ngram'])} {g['weight']:+.2f}" for g in why["features"])
                lines.append(f"          why: model {f['category']} score {why['detail']}; n-grams: {grams}")
            else:
                lines.append(f"          why: rule {f['rule']} ({why['detail']})")
    for a in attachments:
        lines.append(f"  attachment {quoted(a['safe_name'])} {a['kind']} {a['size']} B: {a['action']}"
                     + (f" ({', '.join(a['reasons'])})" if a["reasons"] else ""))
    emit(args, {"action": report.action, "reject_category": report.reject_category, "findings": findings,
                "attachments": attachments}, "\n".join(lines))
    return 0


def _explanation(finding: Any) -> dict[str, Any]:
    """What triggered a finding: its rule id, or the model's score and the n-grams that weighed most."""
    if finding.rule.startswith("model."):
        return {"by": "model", "rule": finding.rule, "detail": finding.detail.split(";", 1)[0].removeprefix("model score "),
                "features": [{"ngram": g, "weight": w} for g, w in finding.features]}
    return {"by": "rule", "rule": finding.rule, "detail": finding.detail}


def message_release(args: argparse.Namespace) -> int:
    from relay.store import queue as queue_repo

    now = time.time()
    with store(args) as conn:
        n = write(conn, lambda c: queue_repo.release_message(c, args.message, now))
    emit(args, {"message": args.message, "released": n}, f"message {args.message} released")
    return 0


def message_drop(args: argparse.Namespace) -> int:
    from relay.app import load_signer
    from relay.delivery.worker import notice_from_row
    from relay.store import messages as messages_repo
    from relay.store import queue as queue_repo

    s = settings(args)
    now = time.time()
    with store(args) as conn:
        row = messages_repo.get(conn, args.message)
        if row is None:
            raise CliError(f"no such message: {args.message}")
        try:
            signer = load_signer(s)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot sign the sender's notice: {exc}") from None
        notice = notice_from_row(s, signer, row, "policy.dropped")
        n = write(conn, lambda c: queue_repo.drop_message(c, args.message, now, "operator.drop", notice))
    emit(args, {"message": args.message, "dropped": n, "notice": notice is not None},
         f"message {args.message} dropped; the sender will be told")
    return 0


