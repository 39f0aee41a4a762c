"""relay policy check FILE.eml — every finding for a message, without sending it;
relay message release|drop ID — an operator's decision on a held message, kept as a label;
relay policy export-labels — those labels in the training corpus's format (never retrains).

Audit: message.released, message.dropped (+ notice.queued), message.labelled (decision and
categories, never text or addresses).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.cli.common import CliError, add_json, emit, group, on_store, quoted, settings

if TYPE_CHECKING:
    from relay.store.interface import Store
    from relay.store.labels import Label

#: longest --reason and --by kept
MAX_REASON = 500
MAX_BY = 64


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psub = group(sub, "policy", "the messaging policy")
    ck = psub.add_parser("check", help="print every policy finding for a message file (nothing is sent)")
    ck.add_argument("file", type=Path)
    ck.add_argument("--policy", type=Path, help="policy file (default: policy.path from the config)")
    ck.add_argument("--explain", action="store_true",
                    help="say what triggered each finding: its rule, or the model's score and top n-grams")
    add_json(ck)
    ck.set_defaults(handler=policy_check)
    ex = psub.add_parser("export-labels", help="write operators' decisions on held messages as training-corpus"
                                                " lines (JSONL); nothing is retrained")
    ex.add_argument("--since", type=_date, help="only decisions from this DATE on (e.g. 2026-12-01)")
    ex.add_argument("--out", type=Path, help="write the lines to FILE (0600) instead of standard output")
    ex.add_argument("--json", action="store_true", help="the summary (on standard error) as one JSON object")
    ex.set_defaults(handler=export_labels)
    msub = group(sub, "message", "relayed messages")
    rel = msub.add_parser("release", help="deliver a held message (its hold's categories were no violation)")
    rel.add_argument("message", type=int)
    _label_options(rel)
    add_json(rel)
    rel.set_defaults(handler=message_release)
    drop = msub.add_parser("drop", help="refuse a held message (its hold's categories are confirmed); the sender"
                                        " gets a notice")
    drop.add_argument("message", type=int)
    _label_options(drop)
    add_json(drop)
    drop.set_defaults(handler=message_drop)


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", type=_categories, metavar="CATEGORY[,CATEGORY]",
                   help="the categories the decision is about, correcting the hold's (marketing, review, contact;"
                        " none)")
    p.add_argument("--reason", type=_text(MAX_REASON, "--reason"), help="a note kept with the label")
    p.add_argument("--by", type=_text(MAX_BY, "--by"), help="the operator deciding (default: $USER)")


def _categories(value: str) -> list[str]:
    from relay.policy.feedback import parse_categories

    try:
        return parse_categories(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _text(limit: int, option: str) -> Any:
    def check(value: str) -> str:
        value = value.strip()
        if not value or len(value) > limit or not value.isprintable():
            raise argparse.ArgumentTypeError(f"{option}: expected 1 to {limit} printable characters")
        return value

    return check


def _date(value: str) -> float:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {quoted(value)} (expected e.g. 2026-12-01"
                                         " or 2026-12-01T09:00:00+09:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


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


async def _held_for(st: Store, message_id: int) -> list[str]:
    from relay.policy.feedback import hold_categories

    return hold_categories(await st.labels.hold_findings(message_id))


def _label_request(args: argparse.Namespace, held_for: list[str]) -> dict[str, Any]:
    """The label's categories (the operator's --label, else the hold's), whether that corrects the
    hold, the note and who decides: what release_with_label and drop_with_label record."""
    by = args.by or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    return {"categories": held_for if args.label is None else args.label,
            "corrected": args.label is not None and args.label != held_for,
            "reason": args.reason, "by": by[:MAX_BY]}


def _label_view(label: Label | None) -> dict[str, Any] | None:
    if label is None:
        return None
    return {"decision": label.decision, "categories": list(label.categories), "held_for": list(label.held_for),
            "corrected": label.corrected, "by": label.decided_by}


def _explanation(finding: Any) -> dict[str, Any]:
    """What triggered a finding: its rule id, or the model's score and the n-grams that weighed most."""
    if finding.rule.startswith("model."):
        return {"by": "model", "rule": finding.rule, "detail": finding.detail.split(";", 1)[0].removeprefix("model score "),
                "features": [{"ngram": g, "weight": w} for g, w in finding.features]}
    return {"by": "rule", "rule": finding.rule, "detail": finding.detail}


def message_release(args: argparse.Namespace) -> int:
    now = time.time()

    async def work(st: Store) -> tuple[int, Label | None]:
        held_for = await _held_for(st, args.message)
        return await st.labels.release_with_label(args.message, now, held_for, **_label_request(args, held_for))

    n, label = on_store(args, work)
    what = ", ".join(label.categories) if label and label.categories else "no category"
    emit(args, {"message": args.message, "released": n, "label": _label_view(label)},
         f"message {args.message} released; labelled not a violation ({what})")
    return 0


def message_drop(args: argparse.Namespace) -> int:
    from relay.app import load_signer, signer_for
    from relay.delivery.worker import notice_from_row

    s = settings(args)
    now = time.time()

    async def work(st: Store) -> tuple[int, tuple[str, str, bytes] | None, Label | None]:
        row = await st.messages.get(args.message)
        # a key kept in the store is read through the store's own methods (its KEK: exit 78 when missing)
        stored = await signer_for(s, st) if s.dkim.source == "store" else None
        if row is None:
            raise CliError(f"no such message: {args.message}")
        try:
            signer = stored or load_signer(s)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot sign the sender's notice: {exc}") from None
        notice = notice_from_row(s, signer, row, "policy.dropped")
        held_for = await _held_for(st, args.message)
        # a held message is an operator's decision on the policy's doubt (a label); so is a
        # released one dropped before it left (that decision replaces the release's label)
        n, label = await st.labels.drop_with_label(args.message, now, notice, held_for,
                                                   **_label_request(args, held_for))
        return n, notice, label

    n, notice, label = on_store(args, work)
    what = ", ".join(label.categories) if label and label.categories else "no category"
    emit(args, {"message": args.message, "dropped": n, "notice": notice is not None, "label": _label_view(label)},
         f"message {args.message} dropped; the sender will be told"
         + (f"; labelled a violation ({what})" if label else ""))
    return 0


def export_labels(args: argparse.Namespace) -> int:
    import orjson

    from relay.policy.feedback import corpus_line

    async def work(st: Store) -> tuple[list[bytes], int, int]:
        lines: list[bytes] = []
        cleared = uncategorised = 0
        for label in await st.labels.listing(args.since):
            if label.decision == "dropped" and not label.categories:
                uncategorised += 1  # dropped for something the corpus has no label for (links, …)
                continue
            raw = await st.messages.get_blob(label.original_sha256) if label.original_sha256 else None
            if raw is None:  # cleared by retention, or erased
                cleared += 1
                continue
            ids = [p for p in (label.sender_id, label.recipient_id) if p is not None]
            addresses = [a for group_ in (await st.parties.addresses_of(ids)).values() for a in group_]
            line = corpus_line(label.message_id, label.decision, label.categories, label.direction, raw, addresses)
            lines.append(orjson.dumps(line) + b"\n")
        return lines, cleared, uncategorised

    lines, cleared, uncategorised = on_store(args, work)
    data = b"".join(lines)
    if args.out is not None:
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise CliError(f"{args.out}: {exc.strerror}") from None
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    summary = {"exported": len(lines), "skipped_cleared": cleared, "skipped_uncategorised": uncategorised,
               "out": str(args.out) if args.out is not None else None}
    if args.json:
        print(orjson.dumps(summary).decode(), file=sys.stderr)
    else:
        print(f"relay: exported {len(lines)} label(s)" + (f" to {args.out}" if args.out is not None else "")
              + f"; skipped {cleared} whose content was cleared (retention or erasure)"
              + f" and {uncategorised} dropped for no corpus category", file=sys.stderr)
    return 0
