"""The policy engine: check(raw) → Report of findings; apply(raw, report) → the message to deliver.

Reads the whole `Policy` (config/policy.toml). Pure and synchronous: no event loop, no
network. The content stage calls check(); a report whose action is reject answers
`550 5.7.1 <report.reject_category>`; hold keeps the message; otherwise apply() performs
redactions, strips attachments/tracking images (with a notice) and scrubs metadata.

Offsets: a text finding's start/end index the *normalized* text of its part (see
normalize.py; `explain()` maps them back); an HTML part's text is its reading by
relay.message.html (displayed text, then hidden text), and its redactions are made in the DOM.
Findings of markup rules (tracking.*, links.html_*) hold the index i of the URL in the part's
HtmlDocument.urls as (i, i + 1); attachment findings use 0/0 unless they come from the
attachment's text. `detail` is for the audit log only. An HTML part the parser refuses
(HtmlTooComplex) is listed in Report.unreadable and the message is refused (554 5.6.0).
"""

from __future__ import annotations

import base64
import binascii
import email.header
import email.utils
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from relay.message import mime
from relay.message.contacts import finder_of
from relay.message.headers import raw_to_str
from relay.message.html import HtmlDocument, HtmlTooComplex, HtmlUrl, merged_spans
from relay.message.mime import first
from relay.message.normalize import Normalized, fold, match_view, normalize
from relay.message.parts import Part, decode_body, decode_text, header_values, parse, set_header
from relay.policy.attachments import inspect, sanitize_filename
from relay.policy.contact import find_contacts
from relay.policy.links import Hit, classify_url, find_links, host_of
from relay.policy.phrases import find_phrases, find_phrases_at, score
from relay.policy.scanner import ready
from relay.policy.scrub import scrub
from relay.policy.settings import RANK, Policy
from relay.scan import is_crlf

_SCORED = ("contact", "marketing", "review")
_MARKUP_PREFIXES = ("tracking.", "links.html_")


@dataclass(slots=True)
class Finding:
    category: str      # links | contact | marketing | review | tracking | attachment
    rule: str          # e.g. links.obfuscated, contact.phone, attachment.archive
    part: str          # "1.2", "header:subject", "attachment:photo.jpg"
    start: int
    end: int
    action: str        # reject | hold | strip | redact | flag | none
    detail: str        # audit only; never the matched text in an SMTP reply
    features: tuple[tuple[str, float], ...] = ()  # model.* findings: the n-grams that weighed most


@dataclass(slots=True)
class AttachmentResult:
    part_id: str       # MIME part id
    label: str         # the Finding.part of this attachment ("attachment:name")
    filename: str      # as declared (decoded)
    safe_name: str     # sanitized
    kind: str          # sniffed type
    size: int
    action: str        # keep | strip
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    action: str = "none"
    reject_category: str | None = None
    attachments: list[AttachmentResult] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # parts that could not be read (refused)

    def audit_events(self) -> list[dict[str, Any]]:
        """One audit record per finding (category, rule, part, action, offsets, detail)."""
        events = [{"event": "policy.finding", **asdict(f)} for f in self.findings]
        events += [{"event": "policy.unreadable", "category": "unreadable", "part": p,
                    "detail": "HTML too complex to read"} for p in self.unreadable]
        for a in self.attachments:
            if a.action == "strip":
                events.append({"event": "policy.attachment_stripped", "part": a.label, "kind": a.kind,
                               "size": a.size, "reasons": list(a.reasons)})
        return events


@dataclass(slots=True)
class _Pending:
    finding: Finding
    scope: str
    weight: float


def _verdict(findings: list[Finding]) -> str:
    best = "none"
    for f in findings:
        if RANK.get(f.action, 0) > RANK[best] or (f.action == "strip" and best == "redact"):
            best = f.action
    return best


def scan_text(text: str, policy: Policy, own: frozenset[str] = frozenset(),
              collect: list[str] | None = None, *,
              one_pass: bool = True) -> list[tuple[str, str, int, int, str, float]]:
    """(category, rule, start, end, detail, weight) for one text; offsets in its normalized text
    (`collect`: the normalized text is appended to it, for the trained model).

    one_pass: every rule pattern's trigger found in one hyperscan pass per text (relay.policy.scanner),
    once the policy's database is compiled; False (or not compiled yet): each finder's own prefilters
    (Aho–Corasick passes, trigger regexes) — the same findings, the reference the scanner is tested
    against, and the path for a text hyperscan cannot read."""
    n = normalize(text[: policy.settings.max_text_chars])
    if own:
        n = _mask_own(n, own)
    if collect is not None:
        collect.append(n.text)
    scanner = ready(policy) if one_pass else None
    found = scanner.scan(n.text) if scanner is not None else None
    if scanner is None or found is None:
        v = match_view(n)
        hits: list[Hit] = find_links(v, policy, own) + find_contacts(v, policy, own)
        literals = policy.phrase_literals_in(v.text) if v.text else {}
        for cat in _SCORED:
            hits.extend(find_phrases(v, policy.phrases[cat], literals))
    else:
        v = match_view(n, found.obfuscations)
        if v.text is not n.text:  # an obfuscation was undone: the view is another text, scanned again
            found = scanner.scan(v.text)
            assert found is not None  # (the same characters as n.text's, rearranged)
        hits = find_links(v, policy, own, found.colon_uris) + find_contacts(v, policy, own, found.literals)
        for cat in _SCORED:
            hits.extend(find_phrases_at(v, policy.phrases[cat], scanner.phrase_plan(found, cat, len(v.text))))
    out = []
    for h in hits:
        ns, ne = v.to_norm(h.start, h.end)
        out.append((h.category, h.rule, ns, ne, h.detail, h.weight))
    return out


def _mask_own(n: Normalized, own: frozenset[str]) -> Normalized:
    """The parties' own addresses, in whatever form the one contact finder recognises, blanked
    (same length, so offsets hold): the rewriter maps them to aliases, so they are neither contact
    details nor links ("alice dot wong at example dot org" holds a bare domain)."""
    found = finder_of(own).find(n.text)
    if not found:
        return n
    text = n.text
    for f in reversed(found):
        text = text[: f.start] + " " * (f.end - f.start) + text[f.end :]
    return Normalized(n.source, text, n.spans)


def check(raw: bytes, policy: Policy, *, own_addresses: Collection[str] = ()) -> Report:
    """Every policy finding for one message, and the verdict action."""
    raw = to_crlf(raw)
    return _check(raw, parse(raw), policy, own_addresses)


def check_and_apply(raw: bytes, policy: Policy, own_addresses: Collection[str] = ()) -> tuple[Report, bytes | None]:
    """check(); and apply() unless the message is refused or held (nothing to deliver yet), both
    on one parse of the message in wire form (the model's parser reads CRLF line ends; the SMTP
    server hands it over so, without a copy) and of each HTML part."""
    raw = to_crlf(raw)
    root = parse(raw)
    docs: dict[str, HtmlDocument] = {}
    report = _check(raw, root, policy, own_addresses, docs)
    if report.action in ("reject", "hold"):
        return report, None
    return report, _apply(raw, root, report, policy, docs)


def _check(raw: bytes, root: Part, policy: Policy, own_addresses: Collection[str],
           docs: dict[str, HtmlDocument] | None = None) -> Report:
    own = frozenset(fold(a.strip().strip("<>")) for a in own_addresses)
    pending: list[_Pending] = []
    judged: list[tuple[str, str]] = []  # (part, normalized text) the trained model reads

    def add_text(text: str, part: str, scope: str, override: str | None = None, qr: bool = False,
                 model: bool = False) -> None:
        seen: list[str] | None = [] if model and policy.model_path is not None else None
        found = scan_text(text, policy, own, seen)
        if seen:
            judged.append((part, seen[0]))
        for cat, rule, s, e, detail, weight in found:
            if qr and cat == "links":
                rule, detail = "links.qr_code", f"QR code: {detail}"
            action = override or policy.action_for(cat, rule)
            pending.append(_Pending(Finding(cat, rule, part, s, e, action, detail), scope, weight))

    subjects = header_values(raw, root, "subject")
    if subjects:
        add_text(subjects[0][2], "header:subject", "message", model=True)
    for name in ("list-unsubscribe", "list-id"):
        if root.header(name) is not None and policy.enabled("marketing", "marketing.list_headers"):
            pending.append(_Pending(Finding("marketing", "marketing.list_headers", f"header:{name}", 0, 0,
                                            policy.action_for("marketing", "marketing.list_headers"),
                                            "mailing-list header"), "message", 0.5))
            break

    attachments: list[AttachmentResult] = []
    unreadable: list[str] = []
    caps = policy.settings.attachments
    total = 0
    labels: set[str] = set()
    for leaf in root.leaves():
        ctype = leaf.content_type
        if leaf.is_attachment:
            data = decode_body(raw, leaf)
            original = leaf.filename or ""
            safe = sanitize_filename(original, caps.filename_max_length)
            label = f"attachment:{safe}"
            if label in labels:
                label = f"attachment:{safe}#{leaf.id}"
            labels.add(label)
            result = AttachmentResult(leaf.id, label, original, safe, "", len(data), "keep")
            attachments.append(result)
            problems: list[tuple[str, str]] = []
            total += len(data)
            if len(data) > caps.max_file_size:
                problems.append(("attachment.too_large", f"{len(data)} bytes"))
            elif total > caps.max_total_size:
                problems.append(("attachment.total_too_large", f"{total} bytes in all"))
            elif len(attachments) > caps.max_count:
                problems.append(("attachment.too_many", f"more than {caps.max_count} attachments"))
            if problems:
                result.kind = "unchecked"
            else:
                ins = inspect(data, safe, ctype, leaf.charset, caps)
                result.kind = ins.kind
                problems = ins.problems
                override = None if caps.content_action == "inherit" else caps.content_action
                for src, text in ins.extracted.texts:
                    add_text(text, label, label, override, qr=src == "qr")
                for src, url in ins.extracted.urls:
                    verdict = classify_url(url, policy, own)
                    if verdict:
                        action = override or policy.action_for("links", verdict[0])
                        pending.append(_Pending(Finding("links", verdict[0], label, 0, 0, action,
                                                        f"link in {src}: {verdict[1]}"), label, 1.0))
            for rule, detail in problems:
                pending.append(_Pending(Finding("attachment", rule, label, 0, 0, caps.action, detail), label, 1.0))
            continue
        # (a multipart leaf: no delimiter found, or nested past the depth or part cap; its body is
        # read as text, as clients show it, rather than passed unread)
        if not (ctype.startswith(("text/", "multipart/")) or ctype == "message/rfc822"
                or ctype == "message/delivery-status"):
            continue
        text, _codec = decode_text(decode_body(raw, leaf), leaf.charset)
        if ctype == "text/html":
            try:
                doc = HtmlDocument(text)
            except HtmlTooComplex:
                unreadable.append(leaf.id)
                continue
            if docs is not None:
                docs[leaf.id] = doc
            _scan_html(doc, leaf.id, policy, own, pending, judged)
        else:
            add_text(text, leaf.id, "message", model=True)

    findings = _score(pending, policy)
    if policy.model_path is not None:
        findings += model_findings(judged, policy, findings)
    stripped_labels = {f.part for f in findings if f.part.startswith("attachment:") and f.action in ("strip", "redact")}
    for a in attachments:
        if a.label in stripped_labels:
            a.action = "strip"
            a.reasons = sorted({f.rule for f in findings if f.part == a.label})
    report = Report(findings, _verdict(findings), None, attachments, unreadable)
    if unreadable:  # what cannot be read cannot be checked: refused, never delivered unread
        report.action, report.reject_category = "reject", "parts of the message are too complex to check"
        return report
    for f in findings:
        if f.action == "reject":
            report.reject_category = policy.reply_for(f.category)
            break
    return report


def _scan_html(doc: HtmlDocument, pid: str, policy: Policy, own: frozenset[str], pending: list[_Pending],
               judged: list[tuple[str, str]] | None = None) -> None:
    """Findings in an HTML part as read_html reads it: its text (displayed, then hidden) and every URL."""
    seen: list[str] | None = [] if judged is not None and policy.model_path is not None else None
    found = scan_text(doc.reading, policy, own, seen)
    if seen and judged is not None:
        judged.append((pid, seen[0]))
    for cat, rule, s, e, detail, weight in found:
        pending.append(_Pending(Finding(cat, rule, pid, s, e, policy.action_for(cat, rule), detail), "message", weight))
    for i, u in enumerate(doc.urls):
        url = u.forms[0]
        tag, attr = u.tag, u.attr
        if _remote_fetch(u, url):
            rule = "tracking.pixel" if _tiny(u) else ("tracking.remote_css" if attr in ("style", "css")
                                                        else "tracking.remote_image")
            if policy.enabled("tracking", rule):
                pending.append(_Pending(Finding("tracking", rule, pid, i, i + 1,
                                                policy.action_for("tracking", rule), f"remote image <{tag}>"),
                                        "message", 1.0))
            continue
        verdict = next((v for v in (classify_url(f, policy, own) for f in u.forms) if v is not None), None)
        if verdict is not None:
            rule = "links.html_" + verdict[0].split(".", 1)[1]
            if policy.enabled("links", rule):
                pending.append(_Pending(Finding("links", rule, pid, i, i + 1, policy.action_for("links", verdict[0]),
                                                f"<{tag} {attr}>: {verdict[1]}"), "message", 1.0))
        if tag in ("a", "area") and u.anchor_text and "." in u.anchor_text:
            target = host_of(url) if url.lower().startswith(("http", "//")) else ""
            shown = [host_of(t) for t in re.findall(r"[\w.-]+\.[a-z]{2,}", fold(u.anchor_text))]
            if target and shown and all(h and h != target and not target.endswith("." + h) for h in shown):
                pending.append(_Pending(Finding("links", "links.anchor_mismatch", pid, i, i + 1,
                                                policy.action_for("links", "links.anchor_mismatch"),
                                                f"anchor text shows {shown[0]}, link goes to {target}"),
                                        "message", 1.0))


_IMAGE_ATTRS = frozenset({"src", "srcset", "lowsrc", "dynsrc"})


def _remote_fetch(u: HtmlUrl, url: str) -> bool:
    """An image or a CSS url() the client fetches from a server when the message is opened."""
    if not (u.attr in ("style", "css") or (u.tag == "img" and u.attr in _IMAGE_ATTRS)):
        return False
    low = url.lower()
    return low.startswith(("http:", "https:", "ftp:", "//")) or bool(re.match(r"^[a-z0-9.-]+\.[a-z]{2,}/", low))


def _tiny(u: HtmlUrl) -> bool:
    """A 0/1-pixel or hidden image: a tracking pixel."""
    if u.tag != "img" or u.attr not in _IMAGE_ATTRS:
        return False
    attrs = u.node.attrs
    w, h = (attrs.get("width") or "").strip(), (attrs.get("height") or "").strip()
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return (w in ("0", "1", "0px", "1px") or h in ("0", "1", "0px", "1px")
            or "display:none" in style or "visibility:hidden" in style)


def _score(pending: list[_Pending], policy: Policy) -> list[Finding]:
    """Drop scored-category findings whose scope's total weight stays under the threshold."""
    totals: dict[tuple[str, str], list[Hit]] = {}
    for p in pending:
        if p.finding.category in _SCORED:
            f = p.finding
            totals.setdefault((p.scope, f.category), []).append(Hit(f.category, f.rule, f.start, f.end, "", p.weight))
    out = []
    for p in pending:
        f = p.finding
        if f.category in _SCORED:
            threshold = policy.category(f.category).threshold
            if score(totals[(p.scope, f.category)]) < threshold:
                continue
        if f.action != "none":
            out.append(f)
    return out


# --- the trained model (relay/policy/model.py, [model]) -------------------------------------

def model_findings(judged: list[tuple[str, str]], policy: Policy, found: Sequence[Finding] = ()) -> list[Finding]:
    """One `model.<category>` finding per category the model scores at or above its `low`
    threshold: the configured action at or above `high`, hold below it. None when the rules
    (`found`: their findings) already refuse the message, nor for a category they already act on,
    since their action (a phone number redacted, say) is the one configured for what they found.
    The message's texts
    (subject, text parts, HTML readings; normalized, the parties' own addresses blanked) are
    judged once, joined by line breaks: the best window may be anywhere in them. The finding
    points at the part holding the n-gram that weighed most, over the window's span in it."""
    from relay.policy import model as trained

    if policy.model_path is None or not judged or any(f.action == "reject" for f in found):
        return []
    model = trained.load(policy.model_path)
    offsets, pos = [], 0
    for _part, text in judged:
        offsets.append(pos)
        pos += len(text) + 1
    joined = "\n".join(text for _part, text in judged)
    scores = model.score(joined)
    acted = {f.category for f in found if f.action in ("reject", "redact", "hold")}
    out: list[Finding] = []
    for cat in trained.CATEGORIES:
        if cat not in policy.model_verdicts or cat not in scores.probability or cat in acted:
            continue
        high, low, action = policy.model_verdicts[cat]
        prob = scores.probability[cat]
        if prob < low:
            continue
        features = model.top_features(joined, scores, cat)
        a, b = scores.windows[cat]
        anchor = a
        if features:  # where the heaviest n-gram is, inside the window
            at = joined.find(features[0][0], a, b + len(features[0][0]))
            anchor = at if at >= 0 else a
        k = max(i for i, off in enumerate(offsets) if off <= anchor)
        part, text = judged[k]
        start = max(a - offsets[k], 0)
        end = min(b - offsets[k], len(text))
        verdict = action if prob >= high else "hold"
        shown = ", ".join(f"{g!r} {w:+.2f}" for g, w in features)
        out.append(Finding(cat, f"model.{cat}", part, start, max(end, start), verdict,
                           f"model score {prob:.3f} (high {high}, low {low}); top n-grams: {shown}",
                           tuple(features)))
    return out


# --- apply --------------------------------------------------------------------------------

def to_crlf(raw: bytes) -> bytes:
    if is_crlf(raw):
        return raw  # already CRLF only (the SMTP server refuses anything else): no copy
    return re.sub(rb"\r?\n|\r(?!\n)", b"\r\n", raw)


def apply(raw: bytes, report: Report, policy: Policy) -> bytes:
    """The message to deliver: redactions made, attachments and tracking images stripped (with a
    notice), metadata of kept attachments scrubbed. CRLF line endings; untouched parts byte-identical."""
    raw = to_crlf(raw)
    return _apply(raw, parse(raw), report, policy)


def _apply(raw: bytes, root: Part, report: Report, policy: Policy,
           docs: dict[str, HtmlDocument] | None = None) -> bytes:
    parts = {p.id: p for p in root.walk()}
    marker = policy.settings.redaction_marker
    edits: list[tuple[int, int, bytes]] = []

    by_part: dict[str, list[Finding]] = {}
    for f in report.findings:
        if f.action in ("redact", "strip"):
            by_part.setdefault(f.part, []).append(f)

    subj = [f for f in by_part.get("header:subject", []) if f.action == "redact"]
    if subj:
        values = header_values(raw, root, "subject")
        if values:
            start, end, value = values[0]
            new = _redact_text(value, [(f.start, f.end) for f in subj], marker)
            edits.append((start, end, _header_line("Subject", new)))

    for pid, found in by_part.items():
        part = parts.get(pid)
        if part is None or part.is_attachment or part.children:
            continue
        edit = _edit_text_part(raw, part, found, marker, (docs or {}).get(pid))
        edits.extend(edit)

    caps = policy.settings.attachments
    for a in report.attachments:
        part = parts.get(a.part_id)
        if part is None:
            continue
        if a.action == "strip":
            edits.extend(_strip_part(raw, part, a, policy))
            continue
        new_data = scrub(a.kind, decode_body(raw, part)) if caps.scrub_metadata else None
        rename = a.safe_name != a.filename and bool(a.filename)
        if new_data is None and not rename:
            continue
        block = _header_block(raw, part)
        if rename:
            block = _rename(block, part, a.safe_name)
        if new_data is not None:
            block = set_header(block, "Content-Transfer-Encoding", b"base64")
            edits.append((part.body_start, part.end, _b64(new_data)))
        edits.append((part.start, part.start + len(_header_block(raw, part)), block))

    return _splice(raw, edits)


def _splice(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = []
    pos = 0
    for start, end, data in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos:
            continue  # overlapping edit (should not happen): keep the first
        out.append(raw[pos:start])
        out.append(data)
        pos = end
    out.append(raw[pos:])
    return b"".join(out)


def _header_block(raw: bytes, part: Part) -> bytes:
    """The part's header fields, without the blank line that ends them."""
    block = raw[part.start : part.body_start]
    if block.endswith(b"\r\n\r\n"):
        return block[:-2]
    if block == b"\r\n":
        return b""
    return block


def _header_line(name: str, value: str) -> bytes:
    if value.isascii():
        return f"{name}: {value}".encode("ascii")
    enc = email.header.Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {enc}".encode("ascii")


def _redact_text(source: str, spans: list[tuple[int, int]], marker: str) -> str:
    n = normalize(source)
    return _replace_spans(source, [n.source_span(s, e) for s, e in spans], marker)


def _replace_spans(source: str, spans: list[tuple[int, int]], marker: str) -> str:
    out, pos = [], 0
    for s, e in merged_spans(spans):
        out.append(source[pos:s])
        out.append(marker)
        pos = e
    out.append(source[pos:])
    return "".join(out)


def _edit_text_part(raw: bytes, part: Part, found: list[Finding], marker: str,
                    doc: HtmlDocument | None = None) -> list[tuple[int, int, bytes]]:
    # (undecodable bytes kept as surrogates, so that they are written back as they came; the
    # offsets are those of the check's reading, which has U+FFFD one for one in their place)
    text, codec = mime.decode_text(decode_body(raw, part), part.charset)
    if part.content_type == "text/html":
        new = _edit_html(doc or HtmlDocument(mime.readable(text)), found, marker)  # (lexbor takes no surrogate)
        if new is None:
            return []
        new_text = new
    else:
        redactions = [(f.start, f.end) for f in found if f.action == "redact"]
        if not redactions:
            return []
        new_text = _redact_text(text, redactions, marker)
    if new_text == text:
        return []
    return _reencode(raw, part, new_text, codec)


def _edit_html(doc: HtmlDocument, found: list[Finding], marker: str) -> str | None:
    """The part's HTML with its findings taken out in the DOM: a text finding becomes the marker in the
    nodes (text, attribute, comment) it spans; a stripped image goes; another URL finding loses its URL
    (a link's href becomes "#"; its text stays unless a text finding covers it)."""
    n = normalize(doc.reading)
    spans: list[tuple[int, int]] = []
    urls: set[int] = set()
    images: set[int] = set()
    for f in found:
        if f.rule.startswith(_MARKUP_PREFIXES):
            if not 0 <= f.start < len(doc.urls):
                continue
            u = doc.urls[f.start]
            (images if f.action == "strip" and u.tag == "img" and u.within is None else urls).add(f.start)
        elif f.action == "redact":
            spans.append(n.source_span(f.start, f.end))
    if not spans and not urls and not images:
        return None
    return doc.redact(spans, marker, sorted(urls - images), sorted(images))


def _b64(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"\r\n".join(enc[i : i + 76] for i in range(0, len(enc), 76)) + (b"\r\n" if enc else b"")


def _reencode(raw: bytes, part: Part, text: str, codec: str) -> list[tuple[int, int, bytes]]:
    block = _header_block(raw, part)
    data, used = mime.encode_text(text, codec)
    declared = (mime.lookup_codec(part.charset) if part.charset else None) or "ascii"
    same = used.replace("-", "_") == declared.replace("-", "_")
    label = None if same or data.isascii() else mime.mime_name(used)
    cte = part.cte
    if cte == "base64":
        body = _b64(data)
    elif cte == "quoted-printable":
        body = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")
    elif not data.isascii() and cte not in ("8bit", "binary"):
        cte = "quoted-printable"
        block = set_header(block, "Content-Transfer-Encoding", b"quoted-printable")
        body = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")
    else:
        body = re.sub(rb"\r?\n", b"\r\n", data)
    edits = [(part.body_start, part.end, body)]
    if label is not None:
        ctype = first(part.fields, "content-type")
        value = raw_to_str(mime.unfold(ctype.value)).strip() if ctype else part.content_type
        value = re.sub(r"\s+", " ", value)
        if re.search(r"charset\s*=", value, re.I):
            value = re.sub(r"charset\s*=\s*(\"?)[^\";\s]*\1", f"charset={label}", value, flags=re.I)
        else:
            value += f"; charset={label}"
        block = set_header(block, "Content-Type", value.encode("ascii", "replace"))
    if block != _header_block(raw, part):
        edits.append((part.start, part.start + len(_header_block(raw, part)), block))
    return edits


def _param(name: str, value: str) -> str:
    if value.isascii() and '"' not in value and "\\" not in value:
        return f'{name}="{value}"'
    return f"{name}*={email.utils.encode_rfc2231(value, 'utf-8')}"


def _rename(block: bytes, part: Part, safe: str) -> bytes:
    ctype = part.content_type
    block = set_header(block, "Content-Type", f"{ctype}; {_param('name', safe)}".encode("ascii"))
    disp = part.disposition or "attachment"
    return set_header(block, "Content-Disposition", f"{disp}; {_param('filename', safe)}".encode("ascii"))


def _strip_part(raw: bytes, part: Part, a: AttachmentResult, policy: Policy) -> list[tuple[int, int, bytes]]:
    caps = policy.settings.attachments
    reason_rule = next((r for r in a.reasons if r in caps.reasons), "attachment.content")
    if reason_rule not in caps.reasons and a.reasons and not a.reasons[0].startswith("attachment."):
        reason_rule = "attachment.content"
    reason = caps.reasons.get(reason_rule, "it breaks the messaging rules")
    notice = caps.notice.format(filename=a.safe_name or "attachment", reason=reason)
    body = binascii.b2a_qp(notice.encode("utf-8"), istext=True).replace(b"\n", b"\r\n") + b"\r\n"
    block = _header_block(raw, part)
    for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
                 "Content-Description", "Content-Location"):
        block = set_header(block, name, None)
    block = set_header(block, "Content-Type", b"text/plain; charset=utf-8")
    block = set_header(block, "Content-Transfer-Encoding", b"quoted-printable")
    block = set_header(block, "Content-Disposition", b"inline")
    return [(part.start, part.start + len(_header_block(raw, part)), block), (part.body_start, part.end, body)]


def explain(raw: bytes, finding: Finding) -> str:
    """The matched text of a finding, for `relay policy check` output (never for SMTP replies)."""
    raw = to_crlf(raw)
    root = parse(raw)
    if finding.part == "header:subject":
        values = header_values(raw, root, "subject")
        return normalize(values[0][2]).text[finding.start : finding.end] if values else ""
    part = {p.id: p for p in root.walk()}.get(finding.part)
    if part is None:
        return ""
    text, _ = decode_text(decode_body(raw, part), part.charset)
    if part.content_type == "text/html":
        try:
            doc = HtmlDocument(text)
        except HtmlTooComplex:
            return ""
        if finding.rule.startswith(_MARKUP_PREFIXES):
            return doc.urls[finding.start].url if 0 <= finding.start < len(doc.urls) else ""
        text = doc.reading
    return normalize(text).text[finding.start : finding.end]
