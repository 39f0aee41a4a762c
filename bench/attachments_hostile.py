"""`python -m bench.attachments_hostile`: what the worst attachments cost relay.message.attachments.

Reads nothing; builds each hostile file in memory (zip bomb, many ZIP entries, many-frame noise GIF,
big noise JPEG, PDFs of many pages, many objects, a bomb stream, heavy text operators), reads it once
and prints the seconds and the markers it returned. Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, StreamObject

from relay.message.attachments import readable_texts


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("word/document.xml", "w") as member:
        block = b"<w:t>a</w:t>" * (1 << 16)
        for _ in range(200 * (1 << 20) // len(block)):
            member.write(block)
    return out.getvalue()


def _many_entries() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(20_000):
            zf.writestr(f"p/{i}.xml", b"<a>x</a>")
    return out.getvalue()


def _noise_gif() -> bytes:
    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 256, (700, 700), dtype=np.uint8)).convert("P") for _ in range(150)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def _noise_jpeg() -> bytes:
    rng = np.random.default_rng(2)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (4000, 6000), dtype=np.uint8)).save(out, "JPEG", quality=80)
    return out.getvalue()


def _pdf(build: Callable[[PdfWriter], None]) -> bytes:
    w = PdfWriter()
    build(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _pages(w: PdfWriter) -> None:
    for _ in range(5000):
        w.add_blank_page(10, 10)


def _objects(w: PdfWriter) -> None:
    page = w.add_blank_page(10, 10)
    page[NameObject("/Junk")] = ArrayObject([w._add_object(NumberObject(i)) for i in range(50_000)])


def _stream(data: bytes) -> StreamObject:
    stream = StreamObject()
    stream._data = zlib.compress(data, 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    return stream


def _bomb_stream(w: PdfWriter) -> None:
    w.add_blank_page(10, 10)[NameObject("/Contents")] = w._add_object(_stream(b" " * (70 << 20)))


def _heavy_text(w: PdfWriter) -> None:
    # 1 MB of text operators shared by 100 pages, with a font so that extract_text interprets them
    ref = w._add_object(_stream(b"BT /F1 12 Tf " + b"(a) Tj " * 150_000 + b"ET"))
    font = w._add_object(DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                           NameObject("/Subtype"): NameObject("/Type1"),
                                           NameObject("/BaseFont"): NameObject("/Helvetica")}))
    res = w._add_object(DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}))
    for _ in range(100):
        page = w.add_blank_page(10, 10)
        page[NameObject("/Contents")] = ref
        page[NameObject("/Resources")] = res


CASES: dict[str, Callable[[], bytes]] = {
    "zip bomb (200 MB inflated)": _zip_bomb,
    "zip of 20,000 entries": _many_entries,
    "GIF, 150 noise frames 700x700": _noise_gif,
    "JPEG, 24 Mpx noise": _noise_jpeg,
    "PDF, 5,000 pages": lambda: _pdf(_pages),
    "PDF, 50,000 objects": lambda: _pdf(_objects),
    "PDF, 70 MB bomb stream": lambda: _pdf(_bomb_stream),
    "PDF, 1 MB text operators x 100 pages": lambda: _pdf(_heavy_text),
}


def main() -> None:
    for name, build in CASES.items():
        data = build()
        start = time.perf_counter()
        texts = readable_texts(data, "application/octet-stream", None)
        took = time.perf_counter() - start
        markers = sorted({where for where, text in texts if not text})
        print(f"{name:40} {len(data) / 1e6:7.2f} MB  {took:6.2f} s  {', '.join(markers)}", flush=True)


if __name__ == "__main__":
    main()
