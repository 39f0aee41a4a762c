"""Hand-built messages that write a real address in the forms a hostile or careless sender uses.

Shared by the oracle's own unit tests (the oracle must see every form) and by the end-to-end
leak tests (the relay must hide every form). Nothing here imports relay/.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

DATE = "Sun, 22 Nov 2026 10:00:00 +0000"

BODIES = {
    "en": "Hello,\r\nYour parcel ships on Monday.\r\nIf anything is wrong, please write to {a} and I will help.\r\n",
    "ja": "こんにちは。\r\nご注文の品は月曜日に発送します。\r\nご連絡は{a}までお願いします。\r\n",
    "zh": "您好，\r\n您的包裹周一发货。\r\n我的邮箱是 {a} ，有问题请告诉我。\r\n",
    "ko": "안녕하세요.\r\n주문하신 상품은 월요일에 발송됩니다.\r\n제 이메일은 {a} 입니다.\r\n",
}


@dataclass(frozen=True, slots=True)
class Parties:
    """Who writes: the sender's real address and name, the other party's, and the alias written to."""

    sender: str
    sender_name: str
    other: str
    other_name: str
    to: str


# --- forms of one address -------------------------------------------------------------------

def any_case(a: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(a))


def bracket_words(a: str) -> str:
    local, domain = a.split("@")
    return f"{local.replace('.', '[dot]')}(at){domain.replace('.', '[dot]')}"


def spoken_words(a: str) -> str:
    local, domain = a.split("@")
    return f"{local.replace('.', ' dot ')} at {domain.replace('.', ' dot ')}"


def fullwidth(a: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in a)


def zero_width(a: str) -> str:
    marks = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
    return "".join(c + marks[i % len(marks)] for i, c in enumerate(a))


def soft_hyphens(a: str) -> str:
    return "".join(c + ("\u00ad" if i % 2 else "") for i, c in enumerate(a))


def spaced(a: str) -> str:
    return " ".join(a)


def entities(a: str) -> str:
    return "".join(f"&#x{ord(c):x};" if i % 2 else f"&#{ord(c)};" for i, c in enumerate(a))


def percent(a: str) -> str:
    return "".join(f"%{b:02X}" for b in a.encode())


def gmail_variants(a: str) -> tuple[str, str]:
    local, domain = a.split("@")
    bare = local.replace(".", "")
    dotted = ".".join(bare)
    other_domain = {"gmail.com": "googlemail.com"}.get(domain, domain)
    return f"{bare}+orders@{domain}", f"{dotted}@{other_domain}"


def split_at(a: str, n: int = 5) -> tuple[str, str]:
    return a[:n], a[n:]


# --- message builders -----------------------------------------------------------------------

def headers(p: Parties, subject: str = "Your order", extra: dict[str, str] | None = None) -> str:
    lines = [f"From: {p.sender_name} <{p.sender}>", f"To: {p.to}", f"Subject: {subject}", f"Date: {DATE}",
             "MIME-Version: 1.0"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return "\r\n".join(lines) + "\r\n"


def text_message(p: Parties, body: str, *, subtype: str = "plain", params: str = "", cte: str = "8bit",
                 subject: str = "Your order", extra: dict[str, str] | None = None) -> bytes:
    data = body.encode()
    if cte == "base64":
        data = base64.encodebytes(data).replace(b"\n", b"\r\n")
    head = headers(p, subject, extra) + (f"Content-Type: text/{subtype}; charset=utf-8{params}\r\n"
                                         f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode() + data


def html_page(inner: str) -> str:
    return f"<html><body><p>Hello,</p><p>Your parcel ships on Monday.</p><p>{inner}</p></body></html>\r\n"


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def with_attachment(p: Parties, text: str, ctype: str, filename: str, data: bytes,
                    disposition: str | None = None) -> bytes:
    disp = disposition or f"attachment; filename={filename}"
    return (headers(p) + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
            f"--b1\r\nContent-Type: {ctype}; name=\"{filename}\"\r\nContent-Disposition: {disp}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64(data)}--b1--\r\n").encode()


def qp_body(lang: str, a: str) -> bytes:
    """Quoted-printable with soft line breaks inside the address and its @ as =40."""
    before, after = BODIES[lang].split("{a}")
    first, rest = split_at(a, 4)
    enc = [binascii.b2a_qp(before.encode(), istext=False), b"=\r\n", first.encode(), b"=\r\n",
           rest.replace("@", "=40").encode(), b"=\r\n", binascii.b2a_qp(after.encode(), istext=False)]
    return b"".join(enc).replace(b"=\n", b"=\r\n")


def pdf(text_lines: list[str], info: dict[str, str], compress: bool) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    w = PdfWriter()
    page = w.add_blank_page(400, 300)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): w._add_object(font)})})
    ops = "".join(f"BT /F1 11 Tf 20 {250 - 20 * i} Td ({line}) Tj ET\n" for i, line in enumerate(text_lines))
    stream = DecodedStreamObject()
    stream.set_data(ops.encode("latin-1"))
    page[NameObject("/Contents")] = w._add_object(stream)
    if compress:
        page.compress_content_streams()
    w.add_metadata(info)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def docx(p: Parties) -> bytes:
    """A DOCX: the address split across runs in the text, as a comment's author and in people.xml."""
    a = p.sender
    first, rest = split_at(a)
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            '<Override PartName="/word/comments.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml"/>'
            '<Override PartName="/word/people.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.people+xml"/>'
            "</Types>"),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
            "</Relationships>"),
        "word/_rels/document.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments" Target="comments.xml"/>'
            '<Relationship Id="rId6" Type="http://schemas.microsoft.com/office/2011/relationships/people" Target="people.xml"/>'
            "</Relationships>"),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {w}><w:body>'
            "<w:p><w:r><w:t>Size chart for order ORD-1.</w:t></w:r></w:p>"
            f'<w:p><w:r><w:t xml:space="preserve">Questions: </w:t></w:r><w:r><w:t>{first}</w:t></w:r>'
            f'<w:r><w:rPr><w:b/></w:rPr><w:t>{rest}</w:t></w:r></w:p></w:body></w:document>'),
        "word/comments.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:comments {w}>'
            f'<w:comment w:id="0" w:author="{a}" w:initials="KS"><w:p><w:r><w:t>Check the size</w:t></w:r></w:p>'
            "</w:comment></w:comments>"),
        "word/people.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w15:people xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml">'
            f'<w15:person w15:author="{p.sender_name}"><w15:presenceInfo w15:providerId="Windows Live" '
            f'w15:userId="{a}"/></w15:person></w15:people>'),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def qr_png(text: str) -> bytes:
    import segno

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()


def qr_gif_last_frame(text: str) -> bytes:
    from PIL import Image

    qr = Image.open(io.BytesIO(qr_png(text))).convert("RGB")
    frames = [Image.new("RGB", qr.size, (240, 240, 240)), Image.new("RGB", qr.size, (200, 220, 250)), qr]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=400, loop=0)
    return buf.getvalue()


def jpeg_with_exif(p: Parties) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x013B] = f"{p.sender_name} <{p.sender}>"  # Artist
    exif[0x8298] = f"(c) {p.sender}"                 # Copyright
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def forward(p: Parties) -> bytes:
    """A forward whose inner headers carry the sender's route: Received, VERP Return-Path, +tag Reply-To."""
    local, domain = p.sender.split("@")
    inner = (f"Received: from [192.0.2.1] by mx.mailer.example for <{p.sender}>; {DATE}\r\n"
             f"Return-Path: <bounce+{local}={domain}@mailer.example>\r\n"
             "X-Originating-IP: [203.0.113.7]\r\n"
             f"From: {p.sender_name} <{p.sender}>\r\n"
             f"Reply-To: {local}+orders@{domain}\r\n"
             f"To: {p.sender}\r\nSubject: Shipping label\r\nDate: {DATE}\r\n"
             "Message-ID: <label-1@mailer.example>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
             f"The shipping label for ORD-1 was created by {p.sender}.\r\n")
    return (headers(p, "Fwd: Shipping label") + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "ご参考までに転送します。\r\n"
            "--b1\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
            f"{inner}--b1--\r\n").encode()


# --- the table -------------------------------------------------------------------------------

#: Where the sender's alias must appear instead of the address (a regex over the oracle's view
#: names), or None where dropping the carrier (a header, a file name) is as good as rewriting it.
BODY = r"content|html"


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    kind: str                     # "text": must be delivered; "attachment": delivered clean or refused 5xx
    build: Callable[[Parties], bytes]
    alias_in: str | None = BODY
    writes_other: bool = False    # the other party's address is written too (quoted)


def _body(lang: str, form: Callable[[str], str]) -> Callable[[Parties], bytes]:
    return lambda p: text_message(p, BODIES[lang].format(a=form(p.sender)))


def _html(inner: Callable[[str], str]) -> Callable[[Parties], bytes]:
    return lambda p: text_message(p, html_page(inner(p.sender)), subtype="html")


def _quoted(p: Parties) -> bytes:
    body = (BODIES["en"].format(a=p.sender) + f"\r\nOn {DATE}, {p.other_name} <{p.other}> wrote:\r\n"
            f"> Is my parcel on its way? You can also write to {p.other.upper()}.\r\n")
    return text_message(p, body)


def _quoted_html(p: Parties) -> bytes:
    inner = (f'Write to <a href="mailto:{p.sender}">{p.sender}</a>.</p><blockquote>'
             f'{p.other_name} &lt;<a href="mailto:{p.other}">{entities(p.other)}</a>&gt; wrote:<br>'
             "Is my parcel on its way?</blockquote><p>")
    return text_message(p, html_page(inner), subtype="html")


def _flowed(p: Parties) -> bytes:
    first, rest = split_at(p.sender, 6)
    body = f"Hello,\r\nIf anything is wrong, please write to {first} \r\n{rest} and I will help.\r\n"
    return text_message(p, body, params="; format=flowed; delsp=yes")


def _qp(p: Parties) -> bytes:
    head = headers(p) + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    return head.encode() + qp_body("ja", p.sender)


def _subject(p: Parties) -> bytes:
    first, rest = split_at(p.sender)
    subject = (f"=?UTF-8?B?{base64.b64encode(('ご連絡先 ' + first).encode()).decode()}?= "
               f"=?UTF-8?Q?{rest.replace('@', '=40')}?=")
    return text_message(p, "Hello,\r\nYour parcel ships on Monday.\r\n", subject=subject)


def _filename(p: Parties) -> bytes:
    first, rest = split_at(p.sender)
    disp = (f"attachment; filename*0*=utf-8''{percent('注文 ' + first)}; "
            f"filename*1*={percent(rest)}.txt")
    return with_attachment(p, "The packing list is attached.", "text/plain", "list.txt",
                           b"Packing list for order ORD-1: 2 mugs.\r\n", disposition=disp)


def _description(p: Parties) -> bytes:
    desc = f"=?UTF-8?B?{base64.b64encode(('연락처 ' + p.sender).encode()).decode()}?="
    return (headers(p) + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Description: {desc}\r\n\r\n"
            "Hello,\r\nYour parcel ships on Monday.\r\n--b1--\r\n").encode()


def _comments(p: Parties) -> bytes:
    return text_message(p, "Hello,\r\nYour parcel ships on Monday.\r\n",
                        extra={"Comments": f"sent by {p.sender_name} <{p.sender}>",
                               "Keywords": f"ORD-1, {any_case(p.sender)}"})


def _gmail(p: Parties) -> bytes:
    v1, v2 = gmail_variants(p.sender)
    return text_message(p, f"Hello,\r\nYour parcel ships on Monday.\r\nWrite to {v1} or {v2} if anything is wrong.\r\n")


def _pdf(compress: bool) -> Callable[[Parties], bytes]:
    def build(p: Parties) -> bytes:
        doc = pdf(["Invoice for order ORD-1", f"Questions: {p.sender}"],
                  {"/Author": f"{p.sender_name} <{p.sender}>", "/Subject": f"連絡先 {p.sender}"}, compress)
        return with_attachment(p, "The invoice is attached.", "application/pdf", "invoice.pdf", doc)
    return build


def _docx(p: Parties) -> bytes:
    return with_attachment(p, "The size chart is attached.",
                           "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                           "sizes.docx", docx(p))


def _vcard(p: Parties) -> bytes:
    first, rest = split_at(p.sender, 7)
    card = (f"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:{p.sender_name}\r\nEMAIL;TYPE=work:{first}\r\n {rest}\r\n"
            "END:VCARD\r\n")
    return with_attachment(p, "My contact card.", "text/vcard", "contact.vcf", card.encode())


def _ics(p: Parties) -> bytes:
    first, rest = split_at(f"ORGANIZER;CN={p.sender_name}:mailto:{p.sender}", 30)
    cal = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:pickup-1@calendar.example\r\n"
           f"DTSTAMP:20261122T100000Z\r\nDTSTART:20261124T100000Z\r\nSUMMARY:Parcel pickup\r\n{first}\r\n {rest}\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n")
    return with_attachment(p, "Pickup time attached.", "text/calendar", "pickup.ics", cal.encode())


def _qr_png(p: Parties) -> bytes:
    return with_attachment(p, "Scan the code for the pickup.", "image/png", "pickup.png", qr_png(f"mailto:{p.sender}"))


def _qr_gif(p: Parties) -> bytes:
    return with_attachment(p, "Scan the code for the pickup.", "image/gif", "pickup.gif",
                           qr_gif_last_frame(f"mailto:{p.sender}"))


def _exif(p: Parties) -> bytes:
    return with_attachment(p, "A photo of your mug.", "image/jpeg", "mug.jpg", jpeg_with_exif(p))


CASES: list[Case] = [
    Case("plain", "text", _body("en", lambda a: a)),
    Case("any_case", "text", _body("ja", any_case)),
    Case("bracket_at_dot", "text", _body("zh", bracket_words)),
    Case("spoken_at_dot", "text", _body("ko", spoken_words)),
    Case("fullwidth", "text", _body("ja", fullwidth)),
    Case("ideographic_dot", "text", _body("zh", lambda a: a.replace("@", "＠").replace(".", "。"))),
    Case("zero_width", "text", _body("en", zero_width)),
    Case("soft_hyphen", "text", _body("ko", soft_hyphens)),
    Case("spaced_letters", "text", _body("zh", spaced)),
    Case("html_entities", "text", _html(lambda a: f"Write to {entities(a)}.")),
    Case("html_comment_split", "text",
         _html(lambda a: f"ご連絡は{a[:3]}<!-- x -->{a[3:8]}<!---->{a[8:]}までお願いします。")),
    Case("html_tag_split", "text",
         _html(lambda a: f"我的邮箱是 <span>{a.split('@')[0]}</span><b>@</b><i>{a.split('@')[1]}</i>")),
    Case("mailto_percent", "text",
         _html(lambda a: f'제 이메일은 <a href="mailto:{percent(a)}">여기</a> 입니다.')),
    Case("mailto_tab_in_href", "text",
         _html(lambda a: f'Write <a href="mail&#9;to:{a[:4]}&#10;{a[4:]}">to me</a>.')),
    Case("duplicate_href", "text",
         _html(lambda a: f'Write <a href="mailto:{any_case(a)}" href="mailto:{a}">to me</a>.')),
    Case("attribute_title", "text",
         _html(lambda a: f'<span title="{a}" data-contact="{percent(a)}">Write to me</span>.')),
    Case("format_flowed", "text", _flowed),
    Case("qp_soft_break", "text", _qp),
    Case("base64_text", "text",
         lambda p: text_message(p, BODIES["zh"].format(a=p.sender), cte="base64")),
    Case("rfc2047_subject", "text", _subject, alias_in=r"header subject decoded"),
    Case("rfc2231_filename", "text", _filename, alias_in=None),
    Case("content_description", "text", _description, alias_in=None),
    Case("comments_keywords", "text", _comments, alias_in=None),
    Case("gmail_variants", "text", _gmail),
    Case("quoted_other", "text", _quoted, writes_other=True),
    Case("quoted_other_html", "text", _quoted_html, writes_other=True),
    Case("forward_rfc822", "text", forward, alias_in=r"/msg"),
    Case("pdf_plain", "attachment", _pdf(False)),
    Case("pdf_compressed", "attachment", _pdf(True)),
    Case("docx", "attachment", _docx),
    Case("vcard_folded", "attachment", _vcard),
    Case("ics_organizer", "attachment", _ics),
    Case("qr_png", "attachment", _qr_png),
    Case("qr_gif_last_frame", "attachment", _qr_gif),
    Case("jpeg_exif", "attachment", _exif),
]
