"""Raw tar writing and walking, byte by byte, for hand-made fixtures.

Nothing here uses the tarfile module: headers are laid out by hand so that
the tests control every field (encodings, checksum variants, typeflags).
"""

BLOCK = 512
END = bytes(2 * BLOCK)

USTAR_MAGIC = b"ustar\x0000"      # POSIX: "ustar\0" + version "00"
GNU_MAGIC = b"ustar  \x00"        # old GNU: "ustar  \0" (magic + version)

# name: (offset, length)
FIELDS = {
    "name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8),
    "size": (124, 12), "mtime": (136, 12), "chksum": (148, 8),
    "typeflag": (156, 1), "linkname": (157, 100), "magic": (257, 8),
    "uname": (265, 32), "gname": (297, 32), "devmajor": (329, 8),
    "devminor": (337, 8), "prefix": (345, 155),
}


def _b(s):
    if isinstance(s, bytes):
        return s
    return s.encode("utf-8", "surrogateescape")


def octal(value, width):
    """Octal digits, NUL-terminated, zero-padded to fill `width` bytes."""
    s = b"%0*o" % (width - 1, value)
    if value < 0 or len(s) > width - 1:
        raise ValueError("%d does not fit %d octal digits" % (value, width - 1))
    return s + b"\0"


def base256(value, width):
    """GNU base-256: high bit of the first byte set, big-endian two's complement."""
    if value >= 0:
        if value >= 1 << (8 * width - 1):
            raise ValueError("too big for base-256 field")
        b = bytearray(value.to_bytes(width, "big"))
        b[0] |= 0x80
        return bytes(b)
    if value < -(1 << (8 * width - 1)):
        raise ValueError("too small for base-256 field")
    return (value + (1 << (8 * width))).to_bytes(width, "big")


def checksums(hdr):
    """(unsigned, signed) sums of a header with the chksum field as spaces."""
    h = bytearray(hdr)
    h[148:156] = b" " * 8
    unsigned = sum(h)
    signed = sum(x - 256 if x >= 128 else x for x in h)
    return unsigned, signed


def header(name, *, mode=None, uid=0, gid=0, size=0, mtime=1600000000,
           typeflag=b"0", linkname=b"", uname=b"", gname=b"", devmajor=0,
           devminor=0, prefix=b"", magic=USTAR_MAGIC, b256=(), raw=None,
           chksum="unsigned"):
    """One 512-byte header.

    b256: names of numeric fields to encode in base-256 instead of octal.
    raw: {field: bytes} written verbatim over the encoded field (after
         encoding, before the checksum).
    chksum: "unsigned" (POSIX), "signed" (historic Sun/GNU variant) or
            "bad" (off by one).
    """
    if mode is None:
        mode = {b"5": 0o755, b"2": 0o777}.get(typeflag, 0o644)
    h = bytearray(BLOCK)

    def put(field, data):
        off, ln = FIELDS[field]
        if len(data) > ln:
            raise ValueError("field %s too long: %d > %d" % (field, len(data), ln))
        h[off:off + len(data)] = data

    put("name", _b(name))
    for field, val in (("mode", mode), ("uid", uid), ("gid", gid),
                       ("size", size), ("mtime", mtime),
                       ("devmajor", devmajor), ("devminor", devminor)):
        width = FIELDS[field][1]
        put(field, base256(val, width) if field in b256 else octal(val, width))
    put("typeflag", typeflag)
    put("linkname", _b(linkname))
    put("magic", magic)
    put("uname", _b(uname))
    put("gname", _b(gname))
    put("prefix", _b(prefix))
    for field, data in (raw or {}).items():
        put(field, data)
    uns, sig = checksums(h)
    value = {"unsigned": uns, "signed": sig, "bad": uns + 1}[chksum]
    if value < 0:
        raise ValueError("negative signed checksum")
    h[148:156] = b"%06o\0 " % value
    return bytes(h)


def pad(data):
    return data + bytes(-len(data) % BLOCK)


def entry(name, data=b"", **kw):
    """Header plus padded data. size defaults to len(data)."""
    kw.setdefault("size", len(data))
    return header(name, **kw) + pad(data)


def pax_records(records):
    """records: iterable of (keyword, value); values str or bytes."""
    out = b""
    for key, val in records:
        body = b" " + _b(key) + b"=" + _b(val) + b"\n"
        n = len(body) + 1
        while len(b"%d" % n) + len(body) != n:
            n += 1
        out += b"%d" % n + body
    return out


def pax(records, name=b"PaxHeaders/x", typeflag=b"x", **kw):
    data = pax_records(records)
    return entry(name, data, typeflag=typeflag, **kw)


def gnu_long(value, typeflag=b"L"):
    """GNU long name ('L') or long link ('K') pseudo-entry."""
    data = _b(value) + b"\0"
    return entry(b"././@LongLink", data, typeflag=typeflag, mode=0o644,
                 magic=GNU_MAGIC)


def parse_num(field):
    """Decode an octal or base-256 numeric field (None when empty)."""
    if field and field[0] & 0x80:
        v = int.from_bytes(field, "big")
        if field[0] & 0x40:  # negative: two's complement
            v -= 1 << (8 * len(field))
        else:
            v &= ~(0x80 << (8 * (len(field) - 1)))
        return v
    s = field.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    return int(s, 8)


def walk(data):
    """Yield (header_offset, typeflag, size, data_offset, next_offset) for each
    header of a well-formed tar (pax/GNU pseudo-headers included, as their
    own items), then ('END', end_offset). Handles old GNU sparse extension
    blocks and pax size overrides."""
    off = 0
    pax_size = None
    while off + BLOCK <= len(data):
        hdr = data[off:off + BLOCK]
        if hdr == bytes(BLOCK):
            yield ("END", off)
            return
        tf = hdr[156:157]
        size = parse_num(hdr[124:136])
        dstart = off + BLOCK
        if tf == b"S" and hdr[482]:
            while True:
                ext = data[dstart:dstart + BLOCK]
                dstart += BLOCK
                if not ext[504]:
                    break
        if pax_size is not None and tf not in (b"x", b"g", b"L", b"K"):
            size = pax_size
            pax_size = None
        if tf == b"x":
            for line in _pax_lines(data[dstart:dstart + size]):
                k, _, v = line.partition(b"=")
                if k == b"size":
                    pax_size = int(v)
        stored = size if tf not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
        nxt = dstart + stored + (-stored % BLOCK)
        yield (off, tf, size, dstart, nxt)
        off = nxt
    raise ValueError("no end-of-archive marker")


def _pax_lines(buf):
    pos = 0
    while pos < len(buf) and buf[pos] != 0:
        sp = buf.index(b" ", pos)
        n = int(buf[pos:sp])
        yield buf[sp + 1:pos + n - 1]
        pos += n
