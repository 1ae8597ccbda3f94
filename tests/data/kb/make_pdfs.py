#!/usr/bin/env python3
"""Writes the small PDFs that test_kb_extract.c and the extract fuzzer use.

The files are built by hand, object by object, with a correct cross-reference
table, so that nothing but this script is needed to re-create them:

    python3 tests/data/kb/make_pdfs.py

manual.pdf   three pages of text in Helvetica, /Title in the Info dictionary
gap.pdf      three pages, the middle one empty (page numbers must survive it)
locked.pdf   a one-page document with an /Encrypt dictionary whose password
             checks fail for the empty password: readers must ask for one
and seeds for tests/fuzz/corpus/extract (a type-hint byte, then the PDF).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "extract")


def pdf_string(s):
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def content(lines):
    """A content stream that shows each line 16 points below the previous."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for i, line in enumerate(lines):
        if i:
            ops.append("0 -16 Td")
        ops.append(pdf_string(line) + " Tj")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def build(pages, title=None, encrypt=False):
    """pages: a list of lists of lines (an empty list gives an empty page)."""
    objs = {}
    n_pages = len(pages)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join("%d 0 R" % p for p in page_ids)
    objs[2] = ("<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages)).encode()
    objs[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    for i, lines in enumerate(pages):
        pid, cid = page_ids[i], page_ids[i] + 1
        objs[pid] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                     "/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % cid).encode()
        body = content(lines) if lines else b""
        objs[cid] = b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream"
    nxt = 4 + 2 * n_pages
    info = enc = None
    if title is not None:
        info = nxt
        objs[info] = ("<< /Title %s /Producer (make_pdfs.py) >>" % pdf_string(title)).encode()
        nxt += 1
    if encrypt:
        enc = nxt
        # /O and /U are arbitrary: no password, the empty one included, opens it
        objs[enc] = (b"<< /Filter /Standard /V 1 /R 2 /P -44 /O <" + b"ab" * 32 +
                     b"> /U <" + b"cd" * 32 + b"> >>")
        nxt += 1
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for oid in sorted(objs):
        offsets[oid] = len(out)
        out += b"%d 0 obj\n" % oid + objs[oid] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % nxt
    out += b"0000000000 65535 f \n"
    for oid in range(1, nxt):
        out += b"%010d 00000 n \n" % offsets[oid]
    trailer = "<< /Size %d /Root 1 0 R" % nxt
    if info:
        trailer += " /Info %d 0 R" % info
    if enc:
        trailer += " /Encrypt %d 0 R /ID [<00112233445566778899aabbccddeeff> " \
                   "<00112233445566778899aabbccddeeff>]" % enc
    trailer += " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


MANUAL = [
    ["Router manual", "The router has a reset button on the back.",
     "Hold it for ten seconds to restore the factory settings."],
    ["Wireless setup", "Connect to the network printed on the label.",
     "The default password is on the same label."],
    ["Troubleshooting", "If the light blinks red, the cable is unplugged."],
]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    write(os.path.join(HERE, "manual.pdf"), build(MANUAL, title="AutoBot Test Manual"))
    write(os.path.join(HERE, "gap.pdf"),
          build([["First page words."], [], ["Third page words."]]))
    write(os.path.join(HERE, "locked.pdf"),
          build([["Secret words."]], title="Locked", encrypt=True))
    os.makedirs(CORPUS, exist_ok=True)
    # the fuzzer's first byte picks the type hint: '4' is application/pdf, '0' none
    tiny = build([["Hello PDF (one) page."]], title="Tiny")
    write(os.path.join(CORPUS, "pdf-tiny"), b"4" + tiny)
    write(os.path.join(CORPUS, "pdf-sniffed"), b"0" + build([["A"], ["B"]]))


if __name__ == "__main__":
    main()
